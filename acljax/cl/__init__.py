"""Gradient-based continual learning: methods as plug-ins (acljax.cl.methods), models (acljax.cl.models),
regularisers as optax transformations and their importances, replay buffers, a small QP solver."""

from acljax.cl.importance import FISHER_ESTIMATORS, fisher_diagonal, mas_importance
from acljax.cl.regularizers import (
    PenaltyState,
    SIState,
    consolidate,
    ewc_consolidate,
    l2_consolidate,
    mas_consolidate,
    online_ewc_consolidate,
    quadratic_penalty,
    replace_named,
    si_consolidate,
    synaptic_intelligence,
)

__all__ = ["FISHER_ESTIMATORS", "PenaltyState", "SIState", "consolidate", "ewc_consolidate", "fisher_diagonal",
           "l2_consolidate", "mas_consolidate", "mas_importance", "online_ewc_consolidate", "quadratic_penalty",
           "replace_named", "si_consolidate", "synaptic_intelligence"]
