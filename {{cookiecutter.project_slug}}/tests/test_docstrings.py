"""Runs the `>>>` examples of every module of the package as doctests."""

import doctest
import importlib
import pkgutil

import pytest

import {{ cookiecutter.package_name }} as package
{%- if cookiecutter.starter_kit != "none" %}
from {{ cookiecutter.package_name }}.check import unfinished_exercise
{%- endif %}


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


class Runner(doctest.DocTestRunner):
    """Keeps the errors that examples raise (to tell an unfinished exercise from a failure) and
    a line per failing example: which one, what it should print, what it printed or raised."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.errors = []
        self.failed_examples = []

    def report_failure(self, out, test, example, got):
        self.failed_examples.append(
            f"{test.name}: >>> {example.source.strip()} expected {example.want.strip()!r}, "
            f"got {got.strip()!r}"
        )
        super().report_failure(out, test, example, got)

    def report_unexpected_exception(self, out, test, example, exc_info):
        self.errors.append(exc_info[1])
        error = f"{type(exc_info[1]).__name__}: {exc_info[1]}".splitlines()[-1]
        self.failed_examples.append(f"{test.name}: >>> {example.source.strip()} raised {error}")
        super().report_unexpected_exception(out, test, example, exc_info)


@pytest.mark.parametrize("module_name", [package.__name__, *MODULE_NAMES])
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = Runner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name):
        runner.run(test)
    result = runner.summarize(verbose=False)
{%- if cookiecutter.starter_kit != "none" %}
    for error in runner.errors:
        if unfinished_exercise(error):
            raise error  # conftest.py reports it as an expected failure
{%- endif %}
    first = runner.failed_examples[0] if runner.failed_examples else ""
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed; {first}"
