"""scalerl: a JAX laboratory for scaling off-policy reinforcement learning."""

__version__ = "0.1.0"
