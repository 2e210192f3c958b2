"""acljax: meta-learning continual-learning algorithms (ACL) with self-referential weight matrices in JAX."""

__version__ = "0.1.0"
