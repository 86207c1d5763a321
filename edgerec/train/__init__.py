"""Training: negative sampling, the loop, checkpoints and the run directory."""
