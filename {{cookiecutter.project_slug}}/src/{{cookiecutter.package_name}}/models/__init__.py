"""Models assembled from the custom components (the tasks in `tasks/` build them).

>>> ResidualRegressor().hidden_units, ConvClassifier().num_classes
(64, 10)
"""

from .conv_classifier import ConvClassifier
from .residual_regressor import ResidualRegressor
from .sequence_forecaster import SequenceForecaster

__all__ = ["ConvClassifier", "ResidualRegressor", "SequenceForecaster"]
