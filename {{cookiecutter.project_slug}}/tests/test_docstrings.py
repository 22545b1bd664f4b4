"""Runs the `>>>` examples of every module of the package as doctests."""

import doctest
import importlib
import pkgutil

import pytest

import {{ cookiecutter.package_name }} as package


def _fail_on_import_error(name):
    raise ImportError(f"cannot import {name}")  # walk_packages would skip it silently


# `__main__` is left out: importing it would run the program.
MODULE_NAMES = sorted(
    info.name
    for info in pkgutil.walk_packages(
        package.__path__, prefix=package.__name__ + ".", onerror=_fail_on_import_error
    )
    if not info.name.endswith(".__main__")
)


@pytest.mark.parametrize("module_name", [package.__name__, *MODULE_NAMES])
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
