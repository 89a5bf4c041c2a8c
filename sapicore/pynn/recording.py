"""Recording for ``sapicore.pynn``: spikes as events and sampled state variables, per population,
handed to PyNN's common code, which makes Neo blocks of them.

A signal holds the value at the start of the recording (t = 0, or the time of the last ``clear``)
and then one value every ``sampling_interval`` ms, at the end of the step that reaches it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyNN import recording

from . import simulator


class Recorder(recording.Recorder):
    _simulator = simulator

    def __init__(self, population: Any, file: Any = None) -> None:
        super().__init__(population, file)
        self._clear_simulator()

    def _record(self, variable: Any, new_ids: Any, sampling_interval: float | None = None) -> None:
        interval = sampling_interval or self._simulator.state.dt
        steps = interval / self._simulator.state.dt
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            raise ValueError(
                f"sampling_interval={interval} ms must be a whole multiple of the time step {self._simulator.state.dt} ms"
            )
        self.sampling_interval = interval

    @property
    def every(self) -> int:
        """Steps between two samples of a signal."""
        return int(round(self.sampling_interval / self._simulator.state.dt))

    def signal_names(self) -> list[str]:
        """The recorded variables other than spikes."""
        return sorted(v.name for v in self.recorded if v.name != "spikes" and self.recorded[v])

    def records_spikes(self) -> bool:
        return any(v.name == "spikes" and self.recorded[v] for v in self.recorded)

    # called by the engine --------------------------------------------------------------------

    def add_spikes(self, neurons: np.ndarray, times: np.ndarray) -> None:
        self._spikes.append((neurons, times))

    def add_samples(self, variable: str, values: np.ndarray) -> None:
        self._signals.setdefault(variable, []).append(values)

    def needs_first_sample(self, variable: str) -> bool:
        return variable not in self._signals

    # asked by PyNN's common code ---------------------------------------------------------------

    def _spike_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._spikes:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        neurons = np.concatenate([n for n, _ in self._spikes])
        times = np.concatenate([t for _, t in self._spikes])
        order = np.argsort(times, kind="stable")
        return neurons[order], times[order]

    def _get_spiketimes(self, requested_ids: Any, clear: bool = False) -> tuple[np.ndarray, np.ndarray]:
        neurons, times = self._spike_arrays()
        ids = neurons + int(self.population.first_id)
        mask = np.isin(ids, np.asarray(list(requested_ids), dtype=np.int64))
        if clear:
            self._spikes = []
        return ids[mask], times[mask].astype(float)

    def _get_all_signals(self, variable: Any, ids: Any, clear: bool = False) -> tuple[np.ndarray, None]:
        parts = self._signals.get(variable.name, [])
        values = np.concatenate(parts, axis=0) if parts else np.zeros((0, self.population.size))
        index = self.population.id_to_index(np.asarray(list(ids), dtype=np.int64))
        if clear:
            self._signals.pop(variable.name, None)
        return values[:, np.atleast_1d(index)], None

    def _local_count(self, variable: Any, filter_ids: Any = None) -> dict[int, int]:
        ids = sorted(self.filter_recorded(variable, filter_ids))
        neurons, _ = self._spike_arrays()
        counts = np.bincount(neurons, minlength=self.population.size)
        return {int(i): int(counts[self.population.id_to_index(i)]) for i in ids}

    def _clear_simulator(self) -> None:
        self._spikes: list[tuple[np.ndarray, np.ndarray]] = []
        self._signals: dict[str, list[np.ndarray]] = {}

    def _reset(self) -> None:
        self._clear_simulator()
