"""Models assembled from the custom components.

>>> ResidualRegressor().hidden_units
64
"""

from .residual_regressor import ResidualRegressor

__all__ = ["ResidualRegressor"]
