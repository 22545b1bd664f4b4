"""Tasks: each module is one problem (data, model, loss, metrics); `base.py` is the interface.

`task=<name>` selects one; `base.shipped_tasks` makes every module here an option.
"""
