"""Custom Keras components: activation, initializer, regularizer, constraint, loss, metric, layers,
learning-rate schedule.

Importing this package registers every custom object with Keras, so `.keras` files that use
them load with `keras.models.load_model` and no `custom_objects`.

>>> import keras
>>> keras.saving.get_registered_object("{{ cookiecutter.package_name }}>HuberLoss") is HuberLoss
True
"""

from .activations import ScaledSoftplus, scaled_softplus
from .constraints import PositiveWeights, positive_weights
from .initializers import GlorotNormalGain, glorot_normal_gain
from .layers import AttentionPooling, CustomDense, GaussianNoise, ResidualBlock, SumAndProduct
from .losses import HuberLoss, SparseCrossEntropy, huber, sparse_cross_entropy
from .metrics import StreamingAccuracy, StreamingMAE
from .regularizers import L1Penalty, l1_penalty
from .schedules import WarmupCosine

__all__ = [
    "AttentionPooling",
    "CustomDense",
    "GaussianNoise",
    "GlorotNormalGain",
    "HuberLoss",
    "L1Penalty",
    "PositiveWeights",
    "ResidualBlock",
    "ScaledSoftplus",
    "SparseCrossEntropy",
    "StreamingAccuracy",
    "StreamingMAE",
    "SumAndProduct",
    "WarmupCosine",
    "glorot_normal_gain",
    "huber",
    "l1_penalty",
    "positive_weights",
    "scaled_softplus",
    "sparse_cross_entropy",
]
