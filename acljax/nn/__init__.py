"""Flax NNX modules over the SRWM core (Linen twins in ``acljax.nn.linen``)."""

from acljax.nn.net import SRWMNet
from acljax.nn.srwm import SRWM, FeedForward, SRWMBlock, SRWMCell, SRWMLayer

__all__ = ["SRWM", "FeedForward", "SRWMBlock", "SRWMCell", "SRWMLayer", "SRWMNet"]
