"""PyNN's Projection for ``sapicore.pynn``: the connections as arrays, in the order the connector
made them.

Each connection has a source and a target index (in the projection's pre and post groups) and a
value of every synapse parameter (``weight`` in nA or µS, or mV for delta synapses; ``delay`` in
ms; the short-term and STDP parameters). A run turns them into sparse projections of the
functional core; plastic weights are read back after every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyNN import common, errors
from pyNN.connectors import OneToOneConnector
from pyNN.space import Space

from . import simulator
from .standardmodels import StaticSynapse, STDPMechanism, TsodyksMarkramSynapse

_MULTIPLE = {"sum": np.add.at, "min": np.minimum.at, "max": np.maximum.at}


class Connection(common.Connection):
    """One connection of a projection: ``weight`` and ``delay`` (and the synapse parameters) are
    read from and written to the projection's arrays."""

    def __init__(self, projection: Projection, index: int) -> None:
        self.projection = projection
        self.index = index

    @property
    def presynaptic_index(self) -> int:
        return int(self.projection._pre[self.index])

    @property
    def postsynaptic_index(self) -> int:
        return int(self.projection._post[self.index])

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__["projection"]._values
        if name in values:
            return float(values[name][self.__dict__["index"]])
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("projection", "index"):
            object.__setattr__(self, name, value)
        elif name in self.projection._values:
            self.projection._check({name: np.array([value], dtype=float)})
            self.projection._values[name][self.index] = value
            simulator.state.changed()
        else:
            raise errors.NonExistentParameterError(name, type(self.projection.synapse_type).__name__)

    def as_tuple(self, *names: str) -> tuple:
        return tuple(getattr(self, name) for name in names)


class Projection(common.Projection):
    __doc__ = common.Projection.__doc__
    _simulator = simulator
    _static_synapse_class = StaticSynapse

    def __init__(
        self,
        presynaptic_population: Any,
        postsynaptic_population: Any,
        connector: Any,
        synapse_type: Any = None,
        source: Any = None,
        receptor_type: str | None = None,
        space: Space | None = None,
        label: str | None = None,
    ) -> None:
        if not list(getattr(postsynaptic_population, "receptor_types", ["?"])):
            raise errors.ConnectionError(
                f"{postsynaptic_population.label!r} has no receptor types to connect to "
                "(a PointNeuron given no post-synaptic responses)"
            )
        common.Projection.__init__(
            self,
            presynaptic_population,
            postsynaptic_population,
            connector,
            synapse_type,
            source,
            receptor_type,
            space or Space(),
            label,
        )
        if not isinstance(self.synapse_type, (StaticSynapse, TsodyksMarkramSynapse, STDPMechanism)):
            raise NotImplementedError(
                f"sapicore.pynn has no synapse type {type(self.synapse_type).__name__}; use its StaticSynapse, "
                "TsodyksMarkramSynapse or STDPMechanism"
            )
        if source is not None:
            raise NotImplementedError("sapicore.pynn simulates point neurons: a projection's source must be None")
        self._pieces: list[tuple[np.ndarray, int, dict]] = []
        if type(connector) is OneToOneConnector:
            self._connect_one_to_one(connector)
        else:
            connector.connect(self)
        pre = [np.asarray(p, dtype=np.int64).reshape(-1) for p, _, _ in self._pieces]
        self._pre = np.concatenate(pre) if pre else np.zeros(0, dtype=np.int64)
        self._post = np.concatenate([np.full(p.size, j, dtype=np.int64) for p, j, _ in self._pieces] or [self._pre])
        names = [n for n in self.synapse_type.native_parameters.keys() if n != "dendritic_delay_fraction"]
        self._values = {
            name: np.concatenate(
                [np.broadcast_to(np.asarray(v[name], dtype=float), p.shape) for p, _, v in self._pieces]
            ).copy()
            if self._pieces
            else np.zeros(0)
            for name in names
        }
        del self._pieces
        self._check(self._values)
        self._keep_initial()
        simulator.state.projections.append(self)
        simulator.state.changed()

    def _check(self, values: dict) -> None:
        """Refuse values that are not finite, and negative delays."""
        for name, value in values.items():
            if not np.isfinite(value).all():
                raise errors.ConnectionError(
                    f"projection {self.label!r}: {name} must be finite, got {value[~np.isfinite(value)][:3]}"
                )
        if "delay" in values and (values["delay"] < 0).any():
            raise errors.ConnectionError(f"projection {self.label!r}: delays must be >= 0 ms")

    def __len__(self) -> int:
        return int(self._pre.size)

    def __getitem__(self, i: int) -> Connection:
        if not -len(self) <= i < len(self):
            raise IndexError(f"projection {self.label!r} has {len(self)} connections, no connection {i}")
        return Connection(self, i % len(self))

    @property
    def connections(self) -> Any:
        return (Connection(self, i) for i in range(len(self)))

    def _keep_initial(self) -> None:
        """Take the weights and synapse parameters as they are at the start of a run from t = 0."""
        self._initial = {name: value.copy() for name, value in self._values.items()}

    def _restore_initial(self) -> None:
        """Weights and synapse parameters back to those of the last start from t = 0 (``reset``),
        as pyNN.brian2 restores its network."""
        for name, value in self._initial.items():
            self._values[name][:] = value

    def _connect_one_to_one(self, connector: OneToOneConnector) -> None:
        """Neuron i to neuron i, the parameters evaluated as PyNN's connectors evaluate them. PyNN's
        own path fails for populations of one neuron with numpy >= 2.4 (a 0-d mask)."""
        if self.pre.size != self.post.size:
            raise errors.ConnectionError(
                f"OneToOneConnector needs groups of one size, got {self.pre.size} -> {self.post.size} neurons"
            )
        space = connector._parameters_from_synapse_type(self)
        for i in range(self.post.size):
            values = {
                name: value.evaluate(simplify=True) if value.is_homogeneous else value[np.array([i]), i]
                for name, value in space.items()
            }
            self._convergent_connect(np.array([i]), i, **values)

    def _convergent_connect(
        self, presynaptic_indices: Any, postsynaptic_index: int, location_selector: Any = None, **parameters: Any
    ) -> None:
        if location_selector is not None:
            raise NotImplementedError("sapicore.pynn simulates point neurons: no location_selector")
        parameters.pop("dendritic_delay_fraction", None)
        self._pieces.append((np.asarray(presynaptic_indices), int(postsynaptic_index), parameters))

    def _set_initial_value_array(self, variable: str, value: Any) -> None:
        raise NotImplementedError("sapicore.pynn's synapse types have no state variables to initialize")

    def _set_attributes(self, parameter_space: Any) -> None:
        simulator.state.changed()
        parameter_space.evaluate()
        for name, value in parameter_space.items():
            if name == "dendritic_delay_fraction":
                continue
            values = np.broadcast_to(np.asarray(value, dtype=float), self.shape)[self._pre, self._post]
            keep = ~np.isnan(values)  # NaN: a pair without a connection in an array given to set
            self._check({name: values[keep]})
            self._values[name][keep] = values[keep]

    def _get_attributes_as_list(self, names: Any) -> list[tuple]:
        columns = []
        for name in names:
            if name == "presynaptic_index":
                columns.append(self._pre)
            elif name == "postsynaptic_index":
                columns.append(self._post)
            else:
                columns.append(self._values[name])
        return [tuple(row) for row in np.stack(columns, axis=1).tolist()] if columns else []

    def _get_attributes_as_arrays(self, names: Any, multiple_synapses: str = "sum") -> list[np.ndarray]:
        arrays = []
        for name in names:
            values = self._values[name]
            if multiple_synapses in _MULTIPLE:
                start = {"sum": 0.0, "min": np.inf, "max": -np.inf}[multiple_synapses]
                array = np.full(self.shape, start)
                _MULTIPLE[multiple_synapses](array, (self._pre, self._post), values)
            else:  # 'first' or 'last'
                array = np.full(self.shape, np.nan)
                order = np.arange(len(self)) if multiple_synapses == "last" else np.arange(len(self))[::-1]
                array[self._pre[order], self._post[order]] = values[order]
            missing = np.ones(self.shape, bool)
            missing[self._pre, self._post] = False
            array[missing] = np.nan
            arrays.append(array)
        return arrays
