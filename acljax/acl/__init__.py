"""ACL: the meta-objective, the jit-compiled meta-training step and the meta-trainer."""

from acljax.acl.config import ACLConfig, ModelConfig, PoolConfig
from acljax.acl.objective import ACLObjective, Term, acl_terms
from acljax.acl.trainer import meta_train

__all__ = ["ACLConfig", "ACLObjective", "ModelConfig", "PoolConfig", "Term", "acl_terms", "meta_train"]
