"""Standard networks built from the functional core: the Brette et al. (2007) benchmarks
([`brette2007`][sapicore.networks.brette2007]) and the Potjans & Diesmann (2014) cortical microcircuit
([`potjans2014`][sapicore.networks.potjans2014])."""

from . import potjans2014
from .brette2007 import coba, cuba, initial_state

__all__ = ["coba", "cuba", "initial_state", "potjans2014"]
