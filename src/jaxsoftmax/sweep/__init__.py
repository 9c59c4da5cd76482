"""Training many settings at once: the config, the plan, the run loop, progress,
checkpoints and the result."""
