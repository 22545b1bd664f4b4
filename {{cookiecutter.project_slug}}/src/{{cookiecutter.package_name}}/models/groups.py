"""Body and head: the variable split behind `optimizer.head_learning_rate`."""


def body_and_head(model, head) -> dict[str, list]:
    """`{"body": [...], "head": [...]}`: the trainable variables of the layer `head`, and all the
    others of `model`, each once, in `model.trainable_variables` order.

    Raises:
        ValueError: if `model` is not built yet (it has no variables to split).
    """
    if not model.built:
        raise ValueError("Call or build the model before asking for its variable groups.")
    head_ids = {id(variable) for variable in head.trainable_variables}
    variables = model.trainable_variables
    return {
        "body": [v for v in variables if id(v) not in head_ids],
        "head": [v for v in variables if id(v) in head_ids],
    }
