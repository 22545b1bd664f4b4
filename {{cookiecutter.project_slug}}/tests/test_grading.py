"""The grading outcome's writers: each platform's file from the same grades."""

import datetime

from {{ cookiecutter.package_name }}.grading import (
    Grade,
    classroom50,
    gradescope,
    markdown,
    summary,
)

GRADES = [
    Grade("loss", 2, 2, "done", 3, 3),
    Grade("metric", 0, 1, "failing", 1, 2, "test_metrics.py::test_mae: assert 2.5 == 2.0"),
    Grade("train_step", 0, 1, "waits for metric", 4, 5),
    Grade("hidden: test_teacher.py", 0, 1, "failing", 0, 1, "secret | reason", hidden=True),
]
RUNNER = {
    "CLASSROOM": "ml-101",
    "ASSIGNMENT": "chapter-3",
    "USERNAME": "ada",
    "SUBMISSION_TAG": "submit/2026-12-01T10-00-00Z-abc1234",
    "COMMIT_URL": "https://github.com/ml-101/ml-101-chapter-3-ada/commit/abc1234",
    "RELEASE_URL": "https://github.com/ml-101/ml-101-chapter-3-ada/releases/tag/x",
}


def test_gradescope_results_have_its_keys_and_types_and_hide_the_hidden_tests():
    results = gradescope(GRADES)
    assert set(results) == {"score", "output", "visibility", "stdout_visibility", "tests"}
    assert results["score"] == 2.0 and results["output"] == "2 of 5 points"
    names = [test["name"] for test in results["tests"]]
    assert names == ["loss", "metric", "train_step", "hidden: test_teacher.py"]
    for test in results["tests"]:
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
        assert isinstance(test["score"], float) and isinstance(test["max_score"], float)
        assert test["status"] in {"passed", "failed"}
    loss, metric, step, hidden = results["tests"]
    assert (loss["score"], loss["max_score"], loss["status"]) == (2.0, 2.0, "passed")
    assert metric["output"] == (
        "failing: 1 of 2 tests pass\ntest_metrics.py::test_mae: assert 2.5 == 2.0"
    )
    assert step["output"] == "waits for metric: 4 of 5 tests pass"
    assert [t["visibility"] for t in results["tests"]] == ["visible"] * 3 + ["after_due_date"]


def test_classroom50_result_takes_its_identity_from_the_runner_and_integer_points():
    when = datetime.datetime(2026, 12, 1, 10, 0, 5, tzinfo=datetime.timezone.utc)
    result = classroom50(GRADES, environ=RUNNER, now=when)
    assert result["schema"] == "classroom50/result/v1"
    assert (result["classroom"], result["assignment"], result["owner"]) == (
        "ml-101",
        "chapter-3",
        "ada",
    )
    assert result["assignment_type"] == "individual"
    assert result["review"] == result["commit"] == RUNNER["COMMIT_URL"]
    assert result["datetime"] == "2026-12-01T10:00:05Z"
    assert (result["score"], result["max-score"]) == (2, 5)
    assert [(t["test-name"], t["passed"], t["score"], t["max-score"]) for t in result["tests"]] == [
        ("loss", True, 2, 2),
        ("metric", False, 0, 1),
        ("train_step", False, 0, 1),
        ("hidden: test_teacher.py", False, 0, 1),
    ]
    assert result["tests"][-1]["output"] == "hidden test"  # its reason stays the teacher's


def test_markdown_table_has_a_row_per_grade_and_keeps_hidden_reasons_out():
    table = markdown(GRADES).splitlines()
    assert table[0] == "| # | exercise | status | points | why |"
    reason = "test_metrics.py::test_mae: assert 2.5 == 2.0"
    assert table[3] == f"| 2 | metric | failing | 0 / 1 | {reason} |"
    assert table[5] == "| 4 | hidden: test_teacher.py | failing | 0 / 1 |  |"
    assert "secret" not in summary(GRADES)
    assert summary(GRADES).startswith("### Grade: 2 / 5\n\n| # |")
    shown = markdown(GRADES, show_hidden_reasons=True).splitlines()[5]
    assert shown.endswith("| secret \\| reason |")  # a pipe cannot break the table
