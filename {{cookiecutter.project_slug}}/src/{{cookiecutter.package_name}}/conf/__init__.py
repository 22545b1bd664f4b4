"""Hydra configuration files: `config.yaml` and the `distribute` and `precision` groups."""
