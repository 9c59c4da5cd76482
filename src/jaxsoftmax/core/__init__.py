"""Pure JAX: the model, the optimiser, batches, the compiled step and sweep, evaluation,
and the one pixel-scale rule. Imports nothing above it."""
