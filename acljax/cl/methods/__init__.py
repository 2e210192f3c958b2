"""Continual-learning methods on one protocol (:class:`Method`), by name.

Add a method: a module with a :class:`Method` subclass, and an entry here.
"""

from acljax.cl.methods.adapters import Adapters
from acljax.cl.methods.base import Masks, Method, TaskEnd, cross_entropy, masked
from acljax.cl.methods.experts import Experts
from acljax.cl.methods.gem import GEM
from acljax.cl.methods.generative import DGR, RtF
from acljax.cl.methods.joint import Joint
from acljax.cl.methods.lora import LoRA
from acljax.cl.methods.lwf import LwF
from acljax.cl.methods.penalties import EWC, L2, MAS, OnlineEWC
from acljax.cl.methods.pnn import PNN
from acljax.cl.methods.replay import AGEM, ERACE, DERpp, Replay
from acljax.cl.methods.si import SI
from acljax.cl.methods.task_tokens import TaskTokens

#: Every method acljax ships, by the name configs and ``acljax cl --method`` use.
METHODS: dict[str, type[Method]] = {
    "naive": Method, "joint": Joint, "l2": L2, "ewc": EWC, "online_ewc": OnlineEWC, "si": SI, "mas": MAS,
    "replay": Replay, "agem": AGEM, "gem": GEM, "er_ace": ERACE, "derpp": DERpp, "lwf": LwF,
    "lora": LoRA, "experts": Experts, "pnn": PNN, "adapters": Adapters, "task_tokens": TaskTokens,
    "dgr": DGR, "rtf": RtF,
}

__all__ = ["AGEM", "DGR", "ERACE", "EWC", "GEM", "L2", "MAS", "METHODS", "PNN", "SI", "Adapters", "DERpp", "Experts",
           "Joint", "LoRA", "LwF", "Masks", "Method", "OnlineEWC", "Replay", "RtF", "TaskEnd", "TaskTokens",
           "cross_entropy", "masked"]
