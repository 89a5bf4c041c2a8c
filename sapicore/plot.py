"""Figures of simulation records (matplotlib, written to PNG or SVG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .analysis import spike_times  # noqa: E402

__all__ = ["raster"]


def raster(records: dict[str, torch.Tensor], dt: float, path: str | Path, title: str = "", max_neurons: int = 1000) -> Path:
    """Spike raster of one or more populations, stacked bottom to top; ``records``: name -> (steps, n).

    At most ``max_neurons`` neurons of each population are drawn. Returns the written path.
    """
    fig, ax = plt.subplots(figsize=(9, 5))
    offset = 0
    for index, (name, spikes) in enumerate(records.items()):
        shown = spikes[:, :max_neurons].cpu()
        times, neurons = spike_times(shown, dt)
        ax.scatter(times, neurons + offset, s=0.5, color=f"C{index}", label=name, rasterized=True)
        offset += shown.shape[1]
    ax.set(xlabel="time (ms)", ylabel="neuron", title=title, ylim=(0, max(offset, 1)))
    ax.legend(loc="upper right", markerscale=10)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
