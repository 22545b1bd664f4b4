"""The mutation run's list stays in step with the source: every mutant still applies."""

import importlib.util
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.check import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
mutants = importlib.util.module_from_spec(spec)
sys.modules["mutants"] = mutants  # a dataclass looks its module up there
spec.loader.exec_module(mutants)


def unfinished(exercise):
    """In the exercises kit, an exercise not written yet has no code to mutate."""
    needle = f"Exercise {exercise}: not written yet"
    return any(needle in p.read_text(encoding="utf-8") for p in mutants.SOURCE.rglob("*.py"))


def test_every_mutant_changes_code_that_is_there_exactly_once():
    stale = [
        problem
        for problem, mutant in zip(mutants.problems_of(mutants.MUTANTS), mutants.MUTANTS)
        if problem and not unfinished(mutant.exercise)
    ]
    assert not stale, stale


def test_every_exercise_has_mutants_and_each_mutant_changes_something():
    assert {mutant.exercise for mutant in mutants.MUTANTS} == {e.name for e in EXERCISES}
    assert all(mutant.original != mutant.mutated for mutant in mutants.MUTANTS)
