"""The custom training loop: strategy and precision setup, checkpoints, logs, and the trainer."""
