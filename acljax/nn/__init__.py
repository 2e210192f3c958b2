"""Flax NNX modules over the SRWM core (Linen twins in ``acljax.nn.linen``)."""

from acljax.nn.learner import Conv4, InContextLearner, MLPEncoder, count_parameters
from acljax.nn.net import SRWMNet
from acljax.nn.srwm import SRWM, FeedForward, SRWMBlock, SRWMCell, SRWMLayer
from acljax.srwm.options import SRWMOptions

__all__ = ["SRWM", "Conv4", "FeedForward", "InContextLearner", "MLPEncoder", "SRWMBlock", "SRWMCell", "SRWMLayer",
           "SRWMNet", "SRWMOptions", "count_parameters"]
