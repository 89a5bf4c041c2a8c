"""Sapicore: a PyTorch framework for spiking and neuromorphic network modelling.

The functional core lives in [`sapicore.functional`][sapicore.functional].
"""

__version__ = "0.1.0"

from .config import register_yaml_support  # noqa: E402

register_yaml_support()
