"""Configuration with tree-config: YAML support for the values Sapicore configures.

tree-config's own ``pathlib.Path`` support can dump a path but raises a ``ScalarNode`` TypeError
when loading it back (its constructor is given the YAML node instead of the node's text); this
module registers a working pair, plus torch tensors (per-neuron parameters) and numpy arrays.
`register_yaml_support` runs when `sapicore` is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import BaseConstructor, SafeRepresenter
from tree_config.yaml import register_numpy_yaml_support, register_torch_yaml_support

__all__ = ["register_yaml_support"]


def _represent_path(representer: SafeRepresenter, value: Path) -> Any:
    return representer.represent_scalar("!tree_path", str(value))


def _construct_path(constructor: BaseConstructor, tag_suffix: str, node: Any) -> Path:
    return Path(constructor.construct_scalar(node))


def register_yaml_support() -> None:
    """Let tree-config's YAML dump and load paths, torch tensors and numpy arrays."""
    register_torch_yaml_support()
    register_numpy_yaml_support()
    SafeRepresenter.add_multi_representer(Path, _represent_path)
    BaseConstructor.add_multi_constructor("!tree_path", _construct_path)
