"""Custom Keras layers: dense, multi-input/multi-output, noise and residual block.

>>> sorted(__all__)
['CustomDense', 'GaussianNoise', 'ResidualBlock', 'SumAndProduct']
"""

from .dense import CustomDense
from .multi_io import SumAndProduct
from .noise import GaussianNoise
from .residual import ResidualBlock

__all__ = ["CustomDense", "GaussianNoise", "ResidualBlock", "SumAndProduct"]
