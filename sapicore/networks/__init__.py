"""Standard networks built from the functional core (the Brette et al. 2007 benchmarks)."""

from .brette2007 import coba, cuba, initial_state

__all__ = ["coba", "cuba", "initial_state"]
