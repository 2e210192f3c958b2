"""Data sets (cache, TFDS and offline importers, the glyph set), episode samplers and task streams."""

from acljax.data.episodes import DEMO, QUERY, SHOT, ClassPool, Episodes, TaskSpec, num_outputs, sample_episodes
from acljax.data.registry import Preprocessing, channel_statistics, listing, load, prepare
from acljax.data.store import DataNotPrepared, ImageSet, data_dir

__all__ = ["DEMO", "QUERY", "SHOT", "ClassPool", "DataNotPrepared", "Episodes", "ImageSet", "Preprocessing",
           "TaskSpec", "channel_statistics", "data_dir", "listing", "load", "num_outputs", "prepare",
           "sample_episodes"]
