"""Checkpoints: the complete state of a simulation, to stop a long run and resume it exactly.

A checkpoint holds the state pytree, the model (parameters pytree), the number of steps taken and
the random generators' states (CPU and, where present, CUDA), so that a resumed run draws the same
random numbers and gives the same spikes as one uninterrupted run::

    final, rec = sf.simulate(net, state, dt=0.1, steps=5000)
    save_checkpoint("run.ckpt", final, step=5000, model=net)
    ...
    ckpt = load_checkpoint("run.ckpt")          # restores the random generators
    sf.simulate(ckpt["model"], ckpt["state"], dt=0.1, steps=5000, start_step=ckpt["step"])

A state knows its network: each projection's state carries the fingerprint of the synapses it was
built for ([`wiring`][sapicore.functional.Projection.wiring]: which pairs are connected, their delays,
dt), so resuming on a network whose populations, sizes or synapses differ (a changed connectivity seed
with the same shapes, say) is refused by ``simulate``, naming the projection, instead of putting
learnt weights onto other pairs.

Checkpoints are pickles (``torch.save``): load only files you trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]

FORMAT = 1


def save_checkpoint(path: str | Path, state: Any, *, step: int, model: Any = None, extra: dict | None = None) -> Path:
    """Write ``state`` (and ``model``, ``extra``) with the step count and the generators' states."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    path = Path(path)
    payload = {
        "format": FORMAT,
        "state": state,
        "model": model,
        "step": step,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "extra": extra or {},
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)  # a crash while writing never leaves a half-written checkpoint under the name
    return path


def load_checkpoint(path: str | Path, restore_rng: bool = True, map_location: Any = None) -> dict:
    """Read a checkpoint; with ``restore_rng`` put the random generators back where they were."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # pickle and zip errors for damaged files
        raise ValueError(f"{path} is not a readable Sapicore checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Sapicore checkpoint of format {FORMAT}")
    if restore_rng:
        torch.set_rng_state(payload["rng"])
        if payload["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return payload
