"""Custom Keras layers: dense, multi-input/multi-output, noise, residual block, attention pooling.

>>> sorted(__all__)
['AttentionPooling', 'CustomDense', 'GaussianNoise', 'ResidualBlock', 'SumAndProduct']
"""

from .attention import AttentionPooling
from .dense import CustomDense
from .multi_io import SumAndProduct
from .noise import GaussianNoise
from .residual import ResidualBlock

__all__ = ["AttentionPooling", "CustomDense", "GaussianNoise", "ResidualBlock", "SumAndProduct"]
