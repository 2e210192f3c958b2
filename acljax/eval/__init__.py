"""One evaluation protocol for every learner: accuracy matrix -> ACC / BWT / FWT / forgetting, reports."""

from acljax.eval.metrics import average_accuracy, backward_transfer, forgetting, forward_transfer, summarize
from acljax.eval.protocol import Learner, Report, accuracy_matrix, evaluate

__all__ = ["Learner", "Report", "accuracy_matrix", "average_accuracy", "backward_transfer", "evaluate",
           "forgetting", "forward_transfer", "summarize"]
