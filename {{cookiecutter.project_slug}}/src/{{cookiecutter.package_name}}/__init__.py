"""Custom Keras 3 components and a custom TensorFlow training loop.

Importing the package is cheap: TensorFlow is imported by the modules that need it, so the
configuration and command-line checks answer without paying for it. It is still enough for
`keras.saving.load_model` of an exported `model.keras`: the custom objects, and the Keras
classes of every task module, register themselves as soon as Keras is imported (right away if
it already is).
"""

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("{{ cookiecutter.project_slug }}")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"


def _register_custom_objects():
    importlib.import_module(f"{__name__}.models")  # imports every component too
    # and every task module, with the Keras classes (models, layers) each one defines
    importlib.import_module(f"{__name__}.tasks.base").register_all_task_classes()


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Runs `_register_custom_objects` right after the first `import keras` completes.

    Keras' `load_model` imports a custom object's module by itself only for Keras' own
    packages; for this one the classes must be registered already.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_keras = spec.loader.exec_module

        def exec_module(module):
            exec_keras(module)
            _register_custom_objects()

        spec.loader.exec_module = exec_module  # this spec's own loader object
        return spec


if "keras" in sys.modules:
    _register_custom_objects()
else:
    sys.meta_path.insert(0, _RegisterAfterKeras())
