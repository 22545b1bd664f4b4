"""Which strategy / precision combinations are supported: one definition for every check.

The template's option file holds the list (`_unsupported_combinations`); its bake-time
hook refuses the same combinations, so a project can never be baked into a state this module would
refuse at run time.

>>> unsupported_reason("tpu", "mixed_float16")
'TPUs have no float16 arithmetic; use mixed_bfloat16 on a TPU'
>>> unsupported_reason("mirrored", "mixed_bfloat16") is None
True
"""

STRATEGIES = ("none", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

# Rendered from the template option file at bake time. The template option
# `mixed_precision=none` is the run-time policy `float32`.
UNSUPPORTED_COMBINATIONS = (
{%- for rule in cookiecutter._unsupported_combinations %}
    ({{ rule.distribution_strategy | tojson }}, {{ rule.mixed_precision | tojson }}, {{ rule.reason | tojson }}),
{%- endfor %}
)


def unsupported_reason(strategy: str, precision: str) -> str | None:
    """Returns why `strategy` with `precision` is refused, or None when it is supported."""
    precision = "float32" if precision == "none" else precision
    for bad_strategy, bad_precision, reason in UNSUPPORTED_COMBINATIONS:
        if (strategy, precision) == (bad_strategy, bad_precision):
            return reason
    return None
