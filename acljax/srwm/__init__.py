"""Pure functional core of the self-referential weight matrix (no Flax)."""

from acljax.srwm.api import IMPLEMENTATIONS, srwm_read, srwm_scan, validate_state
from acljax.srwm.options import SRWMOptions
from acljax.srwm.state import SRWMState, broadcast_state, continue_from, init_state
from acljax.srwm.step import srwm_step

__all__ = ["IMPLEMENTATIONS", "SRWMOptions", "SRWMState", "broadcast_state", "continue_from", "init_state",
           "srwm_read", "srwm_scan", "srwm_step", "validate_state"]
