"""sgvu: sketch-guided visual understanding in JAX/Flax."""

__version__ = "0.1.0"
