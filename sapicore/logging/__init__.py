"""Logging: which properties of an object tree to log, and writers for TensorBoard.

A class lists its loggable properties in ``_loggable_props_`` and its loggable children (friendly
name -> attribute) in ``_loggable_children_``; both accumulate over base classes. A *loggable dict*
mirrors the tree and says for each property whether to log it::

    read_loggable_from_object(model, False)   # {'synapse': {'weight': False}, 'name': False}

It can be dumped to YAML and read back (`dump_loggable`, `read_loggable_from_file`),
brought up to date with new properties (`update_loggable_from_object`) and flattened into the
list of ``(path, object, property, selection)`` to log (`get_loggable_properties`), which
`log_tensor_board` writes to a ``tensorboardX.SummaryWriter``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tree_config import dump_config, read_config_from_file
from tree_config.utils import get_class_bases

__all__ = [
    "Loggable",
    "read_loggable_from_object",
    "get_loggable_properties",
    "read_loggable_from_file",
    "update_loggable_from_object",
    "dump_loggable",
    "log_tensor_board",
    "load_save_get_loggable_properties",
    "NixLogWriter",
    "NixLogReader",
]

FlatLoggable = list[tuple[list[str], Any, str, Any]]


class Loggable:
    """Mixin declaring loggable properties (``_loggable_props_``) and children (``_loggable_children_``)."""

    _loggable_props_: tuple[str, ...] = ()
    _loggable_children_: dict[str, str] = {}

    @property
    def loggable_props(self) -> list[str]:
        """Names of the loggable properties, gathered over the class and its bases."""
        names: dict[str, None] = {}
        for cls in [type(self)] + list(get_class_bases(type(self))):
            for name in cls.__dict__.get("_loggable_props_", ()):
                if not hasattr(self, name):
                    raise AttributeError(
                        f"{type(self).__name__} lists loggable property {name!r} but has no such attribute"
                    )
                names.setdefault(name, None)
        return list(names)

    @property
    def loggable_children(self) -> dict[str, str]:
        """Friendly name -> attribute name of the loggable children, over the class and its bases."""
        children: dict[str, str] = {}
        for cls in [type(self)] + list(get_class_bases(type(self))):
            for name, attribute in cls.__dict__.get("_loggable_children_", {}).items():
                if not hasattr(self, attribute):
                    raise AttributeError(
                        f"{type(self).__name__} lists loggable child {attribute!r} but has no such attribute"
                    )
                children.setdefault(name, attribute)
        return children


def _children(obj: Loggable) -> dict[str, Any]:
    return {name: getattr(obj, attribute) for name, attribute in obj.loggable_children.items()}


def _map_child(child: Any, fn: Any) -> Any:
    if isinstance(child, dict):
        return {key: fn(value) for key, value in child.items()}
    if isinstance(child, (list, tuple)):
        return [fn(value) for value in child]
    return fn(child)


def read_loggable_from_object(obj: Loggable, default_value: bool) -> dict[str, Any]:
    """A nested dict mapping every loggable property of ``obj`` and its children to ``default_value``."""
    loggable = {
        name: _map_child(child, lambda o: read_loggable_from_object(o, default_value))
        for name, child in _children(obj).items()
        if child is not None
    }
    for name in obj.loggable_props:
        loggable.setdefault(name, default_value)
    return loggable


def update_loggable_from_object(obj: Loggable, loggable: dict[str, Any], default_value: bool) -> dict[str, Any]:
    """``loggable`` with entries added for properties the object gained (set to ``default_value``)
    and entries dropped for properties it no longer has."""
    updated: dict[str, Any] = {}
    for name, child in _children(obj).items():
        if child is None:
            continue
        old = loggable.get(name, {})
        if isinstance(child, dict):
            updated[name] = {k: update_loggable_from_object(o, old.get(k, {}), default_value) for k, o in child.items()}
        elif isinstance(child, (list, tuple)):
            updated[name] = [
                update_loggable_from_object(o, old[i] if i < len(old) else {}, default_value)
                for i, o in enumerate(child)
            ]
        else:
            updated[name] = update_loggable_from_object(child, old, default_value)
    for name in obj.loggable_props:
        updated.setdefault(name, loggable.get(name, default_value))
    return updated


def get_loggable_properties(
    obj: Loggable, loggable: dict[str, Any], property_path: list[str] | None = None
) -> FlatLoggable:
    """The selected properties of a loggable dict as ``(path, object, property, selection)`` tuples.

    Raises ``ValueError`` for an entry that names no loggable property or child of the object.
    """
    path = property_path or []
    children = _children(obj)
    props = set(obj.loggable_props)
    flat: FlatLoggable = []
    for name, value in loggable.items():
        if name in children:
            child = children[name]
            if child is None:
                continue
            if isinstance(child, dict):
                for key, sub in child.items():
                    flat += get_loggable_properties(sub, value.get(key, {}), path + [name, str(key)])
            elif isinstance(child, (list, tuple)):
                for index, sub in enumerate(child):
                    if index < len(value):
                        flat += get_loggable_properties(sub, value[index], path + [name, str(index)])
            else:
                flat += get_loggable_properties(child, value, path + [name])
        elif name in props:
            if value:
                flat.append((path + [name], obj, name, value))
        else:
            known = sorted(props | set(children))
            raise ValueError(f"{type(obj).__name__} has no loggable property {name!r}; loggable: {', '.join(known)}")
    return flat


def read_loggable_from_file(filename: str | Path) -> dict[str, Any]:
    """The loggable dict stored in a YAML file by `dump_loggable`."""
    return read_config_from_file(filename)


def dump_loggable(filename: str | Path, data: dict[str, Any]) -> None:
    """Write a loggable dict to a YAML file."""
    dump_config(filename, data)


def load_save_get_loggable_properties(obj: Loggable, filename: str | Path, default_value: bool) -> FlatLoggable:
    """Read the loggable dict from ``filename`` (creating it if missing), bring it up to date with the
    object, write it back, and return the flattened selection."""
    path = Path(filename)
    loggable = read_loggable_from_file(path) if path.exists() else read_loggable_from_object(obj, default_value)
    loggable = update_loggable_from_object(obj, loggable, default_value)
    dump_loggable(path, loggable)
    return get_loggable_properties(obj, loggable)


def log_tensor_board(
    writer: Any,
    loggable_properties: FlatLoggable,
    global_step: int | None = None,
    walltime: float | None = None,
    prefix: str = "",
) -> None:
    """Write the selected properties to a tensorboardX ``SummaryWriter``.

    Scalars become scalar summaries tagged ``path/to/property``; a tensor becomes one scalar per
    element (tag ``.../property/i,j``), or only the elements listed when the selection is a list of
    index tuples.
    """
    for names, obj, prop, selection in loggable_properties:
        if not selection:
            continue
        value = getattr(obj, prop)
        value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        tag = "/".join(([prefix] if prefix else []) + list(names))
        if value.shape:
            indices = (
                [tuple(index) for index in selection]
                if isinstance(selection, (list, tuple))
                else list(np.ndindex(value.shape))
            )
            for index in indices:
                writer.add_scalar(
                    f"{tag}/{','.join(map(str, index))}",
                    float(value[index]),
                    global_step=global_step,
                    walltime=walltime,
                )
        else:
            writer.add_scalar(tag, float(value), global_step=global_step, walltime=walltime)


# the original package's import path (``from sapicore.logging import NixLogWriter``); nix.py needs nothing above
from .nix import NixLogReader, NixLogWriter  # noqa: E402
