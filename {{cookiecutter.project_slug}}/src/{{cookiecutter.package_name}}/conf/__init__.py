"""Hydra configuration files: `config.yaml` and the `distribute`, `precision`, `experiment` and
`debug` groups."""
