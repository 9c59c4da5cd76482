"""A trained run read back without JAX: load it, choose a model, predict, export."""
