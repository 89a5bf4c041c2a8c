"""Figures of simulation records (matplotlib; the file's suffix picks PNG or SVG).

Every function writes one figure to ``path`` and returns the path: spike rasters, population rates,
voltage traces, weight matrices and histograms, and heatmaps of a summary measure over two swept
parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .analysis import spike_times  # noqa: E402

__all__ = ["raster", "raster_events", "population_rate", "rate_bars", "traces", "weights", "sweep_heatmap"]


def _save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path``; a failed write (no space, no permission) raises ``OSError`` naming the file."""
    path = Path(path)
    try:
        fig.savefig(path, dpi=120)
    except OSError as err:
        if err.filename is None and err.errno is not None:
            raise OSError(err.errno, os.strerror(err.errno), str(path)) from None
        raise
    finally:
        plt.close(fig)
    return path


def _numpy(values: Any) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def raster(
    records: dict[str, torch.Tensor], dt: float, path: str | Path, title: str = "", max_neurons: int = 1000
) -> Path:
    """Spike raster of one or more populations, stacked bottom to top; ``records``: name -> (steps, n).

    At most ``max_neurons`` neurons of each population are drawn.
    """
    events = {}
    for name, spikes in records.items():
        times, neurons = spike_times(spikes.cpu(), dt)
        events[name] = (times, neurons, spikes.reshape(spikes.shape[0], -1).shape[1])
    return raster_events(events, path, title, max_neurons)


def raster_events(
    events: dict[str, tuple[Any, Any, int]], path: str | Path, title: str = "", max_neurons: int = 1000
) -> Path:
    """Spike raster from events: ``events[name] = (times in ms, neuron indices, population size)``."""
    fig, ax = plt.subplots(figsize=(9, 5))
    offset = 0
    for index, (name, (times, neurons, size)) in enumerate(events.items()):
        times, neurons = _numpy(times), _numpy(neurons)
        shown = neurons < max_neurons
        ax.scatter(times[shown], neurons[shown] + offset, s=0.5, color=f"C{index}", label=name, rasterized=True)
        offset += min(size, max_neurons)
    ax.set(xlabel="time (ms)", ylabel="neuron", title=title, ylim=(0, max(offset, 1)))
    ax.legend(loc="upper right", markerscale=10)
    return _save(fig, path)


def population_rate(
    records: dict[str, torch.Tensor], dt: float, path: str | Path, bin_ms: float = 5.0, title: str = ""
) -> Path:
    """Population firing rate (Hz) in bins of ``bin_ms`` for each population's spike record."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    per_bin = max(1, int(round(bin_ms / dt)))
    for index, (name, spikes) in enumerate(records.items()):
        counts = _numpy(spikes).reshape(spikes.shape[0], -1).sum(1)
        usable = len(counts) // per_bin * per_bin
        binned = counts[:usable].reshape(-1, per_bin).sum(1)
        rate = binned / spikes.reshape(spikes.shape[0], -1).shape[1] / (per_bin * dt / 1000.0)
        ax.plot((np.arange(len(rate)) + 0.5) * per_bin * dt, rate, color=f"C{index}", label=name)
    ax.set(xlabel="time (ms)", ylabel="rate (Hz)", title=title)
    ax.legend(loc="upper right")
    return _save(fig, path)


def rate_bars(
    rates: dict[str, float], references: dict[str, dict[str, float]], path: str | Path, title: str = ""
) -> Path:
    """Each population's mean rate (Hz) as a bar beside its rate in each labelled reference set."""
    names = list(rates)
    x = np.arange(len(names))
    width = 0.8 / (1 + len(references))
    fig, ax = plt.subplots(figsize=(max(5, len(names) * 0.9), 4))
    ax.bar(x - 0.4 + width / 2, [rates[n] for n in names], width=width, label="this run")
    for k, (label, reference) in enumerate(references.items(), start=1):
        ax.bar(x - 0.4 + (k + 0.5) * width, [reference.get(n, np.nan) for n in names], width=width, label=label)
    ax.set(xticks=x, xticklabels=names, ylabel="mean rate (Hz)", title=title)
    ax.legend()
    return _save(fig, path)


def traces(
    values: torch.Tensor,
    t: torch.Tensor,
    path: str | Path,
    neurons: Sequence[int] = (0,),
    label: str = "v (mV)",
    title: str = "",
) -> Path:
    """Traces of a recorded variable ``(records, neurons)`` against time ``t`` (ms) for a few neurons."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    data, time = _numpy(values).reshape(values.shape[0], -1), _numpy(t)
    for neuron in neurons:
        ax.plot(time, data[:, neuron], lw=0.8, label=f"neuron {neuron}")
    ax.set(xlabel="time (ms)", ylabel=label, title=title)
    ax.legend(loc="upper right")
    return _save(fig, path)


def weights(matrix: torch.Tensor, path: str | Path, mask: torch.Tensor | None = None, title: str = "") -> Path:
    """A weight matrix ``(n_pre, n_post)`` as an image beside the histogram of its synapses' weights."""
    data = _numpy(matrix)
    present = _numpy(mask).astype(bool) if mask is not None else np.ones_like(data, dtype=bool)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    image = left.imshow(np.where(present, data, np.nan), aspect="auto", interpolation="nearest", cmap="viridis")
    left.set(xlabel="target neuron", ylabel="source neuron", title=title or "weights")
    fig.colorbar(image, ax=left)
    right.hist(data[present], bins=50, color="C0")
    right.set(xlabel="weight", ylabel="synapses", title="weight histogram")
    fig.tight_layout()
    return _save(fig, path)


def sweep_heatmap(
    labels: list[dict], values: Sequence[float], x: str, y: str, path: str | Path, measure: str = "", title: str = ""
) -> Path:
    """A summary measure over a grid of two swept parameters (``labels`` as returned by ``sf.grid``)."""
    xs = sorted({label[x] for label in labels})
    ys = sorted({label[y] for label in labels})
    grid = np.full((len(ys), len(xs)), np.nan)
    for label, value in zip(labels, values):
        grid[ys.index(label[y]), xs.index(label[x])] = float(value)
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap="magma")
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set(xlabel=x, ylabel=y, title=title)
    fig.colorbar(image, ax=ax, label=measure)
    return _save(fig, path)
