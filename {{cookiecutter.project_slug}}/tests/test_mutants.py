"""The mutation run: its list covers every exercise, and code worded otherwise is skipped.

That every mutant applies to the reference wording is the template's own test (the solutions
kit's `tools/mutants.py` against its `src/`): here a student's or researcher's correct code,
worded otherwise, must never turn red.
"""

import importlib.util
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.check import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
mutants = importlib.util.module_from_spec(spec)
sys.modules["mutants"] = mutants  # a dataclass looks its module up there
spec.loader.exec_module(mutants)


def test_every_exercise_has_mutants_and_each_mutant_changes_something():
    assert {mutant.exercise for mutant in mutants.MUTANTS} == {e.name for e in EXERCISES}
    assert all(mutant.original != mutant.mutated for mutant in mutants.MUTANTS)


def test_make_mutants_skips_code_worded_otherwise_and_stays_green(monkeypatch, capsys):
    # A student's `x * scale` for `scale * x` leaves nothing for that mutant to replace.
    worded_otherwise = mutants.Mutant("activation", "components/activations.py", "no such", "x", "")
    monkeypatch.setattr(mutants, "MUTANTS", (worded_otherwise,))
    assert mutants.main(["--only", "activation"]) == 0  # nothing left to run, nothing red
    out = capsys.readouterr().out
    assert "1 mutants skipped: each is written against the solutions kit's wording" in out
    assert "has the original 0 times" in out
    assert out.strip().endswith("no mutant applies here: nothing to run")
    assert mutants.main(["--only", "activations"]) == 2  # a typo is still refused
    assert "error: --only=activations: no mutant of that exercise" in capsys.readouterr().out
