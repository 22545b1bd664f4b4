"""One grading outcome, written for each place a course grades: Gradescope, Classroom 50, a
Markdown table (a GitHub Actions job summary, a release body).

`check` computes a `Grade` per exercise (and per file of the teacher's hidden tests); the
writers below only lay it out. Standard library only: the autograder bundles run it before
anything else is installed.

>>> grade = Grade("loss", 0, 1, "failing", 2, 3, "test_huber: assert 0.5 == 1.0")
>>> print(markdown([grade]).splitlines()[2])
| 1 | loss | failing | 0 / 1 | test_huber: assert 0.5 == 1.0 |
"""

import datetime
import os
from dataclasses import dataclass

# Gradescope shows a hidden test to the student once the due date has passed.
HIDDEN_VISIBILITY = "after_due_date"


@dataclass(frozen=True)
class Grade:
    """One graded item: an exercise, or a file of the teacher's hidden tests.

    `status` is check's: `done`, `to do`, `failing` or `waits for <exercise>`; `reason` is the
    first failing test with its reason in a line or two ("" when nothing failed).
    """

    name: str
    points: int
    max_points: int
    status: str
    passed: int
    total: int
    reason: str = ""
    hidden: bool = False

    @property
    def done(self) -> bool:
        return self.status == "done"

    def output(self) -> str:
        line = f"{self.status}: {self.passed} of {self.total} tests pass"
        return f"{line}\n{self.reason}" if self.reason else line


def total(grades) -> tuple[int, int]:
    """(points, maximum) over `grades`."""
    return sum(g.points for g in grades), sum(g.max_points for g in grades)


def gradescope(grades) -> dict:
    """Gradescope's `results.json`: one test per grade; hidden tests after the due date.

    Keys and values as Gradescope's autograder specification lists them (top level `score`,
    `output`, `visibility`, `stdout_visibility`; per test `name`, `score`, `max_score`,
    `status`, `output`, `visibility`).
    """
    points, maximum = total(grades)
    return {
        "score": float(points),
        "output": f"{points} of {maximum} points",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": grade.name,
                "score": float(grade.points),
                "max_score": float(grade.max_points),
                "status": "passed" if grade.done else "failed",
                "output": grade.output(),
                "visibility": HIDDEN_VISIBILITY if grade.hidden else "visible",
            }
            for grade in grades
        ],
    }


def classroom50(grades, environ=None, now=None) -> dict:
    """Classroom 50's `result.json` (schema `classroom50/result/v1`): the submission's identity
    from the variables its runner sets, integer points, one entry per grade.

    A hidden grade shows its points, not its reason.
    """
    env = os.environ if environ is None else environ
    when = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    points, maximum = total(grades)
    commit = env.get("COMMIT_URL", "")
    return {
        "schema": "classroom50/result/v1",
        "classroom": env.get("CLASSROOM", ""),
        "assignment": env.get("ASSIGNMENT", ""),
        "assignment_type": env.get("ASSIGNMENT_TYPE") or "individual",
        "owner": env.get("OWNER") or env.get("USERNAME", ""),
        "submission": env.get("SUBMISSION_TAG", ""),
        "commit": commit,
        "release": env.get("RELEASE_URL", ""),
        "review": env.get("REVIEW_URL") or commit,
        "datetime": when,
        "score": points,
        "max-score": maximum,
        "tests": [
            {
                "test-name": grade.name,
                "passed": grade.done,
                "score": grade.points,
                "max-score": grade.max_points,
                "output": "hidden test" if grade.hidden else grade.output(),
            }
            for grade in grades
        ],
    }


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown(grades, show_hidden_reasons=False) -> str:
    """A Markdown table: one row per grade with its status, points and reason."""
    lines = ["| # | exercise | status | points | why |", "|---|---|---|---|---|"]
    for number, grade in enumerate(grades, start=1):
        reason = grade.reason if show_hidden_reasons or not grade.hidden else ""
        lines.append(
            f"| {number} | {_cell(grade.name)} | {grade.status} | "
            f"{grade.points} / {grade.max_points} | {_cell(reason)} |"
        )
    return "\n".join(lines) + "\n"


def summary(grades) -> str:
    """The job summary (or release body): the total, then the table."""
    points, maximum = total(grades)
    return f"### Grade: {points} / {maximum}\n\n{markdown(grades)}"
