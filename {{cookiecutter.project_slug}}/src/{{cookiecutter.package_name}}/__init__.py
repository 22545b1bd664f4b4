"""Custom Keras 3 components and a custom TensorFlow training loop.

Importing the package is cheap: TensorFlow is imported by the modules that need it, so the
configuration and command-line checks answer without paying for it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("{{ cookiecutter.project_slug }}")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
