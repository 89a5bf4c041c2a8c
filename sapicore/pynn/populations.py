"""PyNN's Population, PopulationView and Assembly for ``sapicore.pynn``.

Parameters are kept as PyNN gives them (one array per parameter, PyNN names and units) and become
the functional model's tensors when a run starts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyNN import common, errors
from pyNN.parameters import LazyArray, ParameterSpace, simplify

from . import simulator
from .recording import Recorder
from .standardmodels import check_cell_type


class Assembly(common.Assembly):
    _simulator = simulator


class _Parameters:
    """Reading and writing the parameters of a population, or of the neurons a view selects."""

    def _get_parameters(self, *names: str) -> ParameterSpace:
        return self.celltype.reverse_translate(self._get_native_parameters(*self.celltype.get_native_names(*names)))

    def _get_native_parameters(self, *names: str) -> ParameterSpace:
        parent, mask = self._owner()
        values = {}
        for name in names:
            value = parent._parameters[name]
            values[name] = simplify(value[mask] if isinstance(value, np.ndarray) else value)
        return ParameterSpace(values, shape=(self.size,))

    def _set_parameters(self, parameter_space: ParameterSpace) -> None:
        parent, mask = self._owner()
        parameter_space.evaluate(simplify=False)
        parent.celltype.check_parameters(dict(parameter_space.items()))
        simulator.state.changed()
        for name, value in parameter_space.items():
            try:
                parent._parameters[name][mask] = value
            except ValueError as err:
                raise errors.InvalidParameterValueError(f"{name} cannot be set to {value!r}: {err}") from None

    def _set_initial_value_array(self, variable: str, value: LazyArray) -> None:
        """Keep the value for the next start from t = 0; while a run is under way (between ``run``
        calls), also set it in the running state, as NEST does."""
        parent, mask = self._owner()
        if variable not in parent.celltype.default_initial_values:
            raise errors.NonExistentParameterError(
                variable, parent.celltype.__class__.__name__, list(parent.celltype.default_initial_values)
            )
        values = np.asarray(value.evaluate(simplify=False), dtype=float).reshape(-1)
        if values.size == 1:
            values = np.full(self.size, values[0])
        if not np.isfinite(values).all():
            raise ValueError(f"initial {variable} of {parent.label!r} must be finite, got {values}")
        stored = parent._initial.setdefault(variable, np.full(parent.size, parent._default_initial(variable)))
        stored[mask] = values
        if simulator.state.network_state is not None:
            simulator.state.pending_initial.append((parent, variable, np.arange(parent.size)[mask], values))


class PopulationView(_Parameters, common.PopulationView):
    _assembly_class = Assembly
    _simulator = simulator

    def _owner(self) -> tuple[Any, Any]:
        return self.grandparent, self.index_in_grandparent(np.arange(self.size))

    def initialize(self, **initial_values: Any) -> None:
        """Set initial values of state variables for the neurons of this view (see
        ``Population.initialize``)."""
        for variable, value in initial_values.items():
            self._set_initial_value_array(variable, LazyArray(value, shape=(self.size,), dtype=float))

    def _get_view(self, selector: Any, label: str | None = None) -> PopulationView:
        return PopulationView(self, selector, label)


class Population(_Parameters, common.Population):
    __doc__ = common.Population.__doc__
    _simulator = simulator
    _recorder_class = Recorder
    _assembly_class = Assembly

    def __init__(self, size: int, cellclass: Any, cellparams: Any = None, **kwargs: Any) -> None:
        celltype = cellclass(**(cellparams or {})) if isinstance(cellclass, type) else cellclass
        check_cell_type(celltype)
        self._initial: dict[str, np.ndarray] = {}
        super().__init__(size, celltype, None, **kwargs)
        simulator.state.populations.append(self)
        simulator.state.changed()

    def _owner(self) -> tuple[Any, Any]:
        return self, slice(None)

    def _default_initial(self, variable: str) -> float:
        return float(self.celltype.default_initial_values[variable])

    def _create_cells(self) -> None:
        first = simulator.state.id_counter
        self.all_cells = np.array([simulator.ID(i) for i in range(first, first + self.size)], dtype=simulator.ID)
        self._mask_local = np.ones(self.size, bool)
        parameter_space = self.celltype.native_parameters
        parameter_space.shape = (self.size,)
        parameter_space.evaluate(simplify=False)
        self.celltype.check_parameters(dict(parameter_space.items()))
        self._parameters = parameter_space.as_dict()
        for cell in self.all_cells:
            cell.parent = self
        simulator.state.id_counter += self.size

    def _get_view(self, selector: Any, label: str | None = None) -> PopulationView:
        return PopulationView(self, selector, label)
