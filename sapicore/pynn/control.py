"""Simulation control for ``sapicore.pynn``: setup, run, reset, end and the state queries."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from pyNN import common
from pyNN.common.control import DEFAULT_MIN_DELAY, DEFAULT_TIMESTEP
from pyNN.recording import get_io

from . import simulator


def setup(timestep: float = DEFAULT_TIMESTEP, min_delay: Any = DEFAULT_MIN_DELAY, **extra_params: Any) -> int:
    """Start a new network, with time step ``timestep`` (ms).

    Sapicore's extra parameters: ``fast`` (False: the reference loop; True: compiled chunks, see
    ``sapicore.functional.simulate``), ``device`` ("cpu", "cuda"), ``dtype`` (torch.float32 by
    default; torch.float64 for double precision) and ``rng_seed`` (the Poisson sources' stream; drawn
    from the operating system when not given, so that every process draws other trains; ``reset``
    restarts the stream, so a run after it repeats the run before).
    ``threads`` is accepted and ignored (torch's own thread setting applies); other backends'
    parameters are ignored with a warning.
    """
    if not timestep > 0:
        raise ValueError(f"timestep must be a positive number of ms, got {timestep!r}")
    unknown = sorted(set(extra_params) - {"max_delay", "fast", "device", "dtype", "rng_seed", "threads"})
    if unknown:  # other backends' settings: a script written for them still runs
        warnings.warn(f"sapicore.pynn ignores the setup() parameters {unknown}", stacklevel=2)
    common.setup(timestep, min_delay, **extra_params)
    state = simulator.state
    state.dt = float(timestep)
    state.min_delay = min_delay
    state.max_delay = extra_params.get("max_delay", "auto")
    state.fast = extra_params.get("fast", False)
    state.device = torch.device(extra_params.get("device", "cpu"))
    state.dtype = extra_params.get("dtype", torch.float32)
    if state.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {state.dtype!r}")
    seed = extra_params.get("rng_seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise ValueError(f"rng_seed must be an int in [0, 2**63), got {seed!r}")
    state.rng_seed = int.from_bytes(os.urandom(8), "little") >> 2 if seed is None else int(seed)
    state.clear()
    return rank()


def end(compatible_output: bool = True) -> None:
    """Write the data asked for with ``record(..., to_file=...)``."""
    for population, variables, filename in simulator.state.write_on_end:
        population.write_data(get_io(filename), variables)
    simulator.state.write_on_end = []


run, run_until = common.build_run(simulator)
run_for = run
reset = common.build_reset(simulator)
initialize = common.initialize
get_current_time, get_time_step, get_min_delay, get_max_delay, num_processes, rank = common.build_state_queries(
    simulator
)
