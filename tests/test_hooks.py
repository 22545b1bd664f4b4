"""The bake-time checks: every bad answer stops the bake in the hook, with its message."""

import pytest

from .conftest import UNSUPPORTED, combo_id


def assert_refused(cookies, capfd, tmp_path, answers, message):
    output_dir = tmp_path / "cookies" / f"bake{cookies._counter:02d}"
    result = cookies.bake(extra_context=answers)
    err = capfd.readouterr().err
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "FailedHookException"
    errors = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert any(message in line for line in errors), err
    assert output_dir.is_dir() and not any(output_dir.iterdir()), "a refused bake leaves nothing"


BAD_ANSWERS = {
    "keyword-package": ({"package_name": "class"}, "package_name='class': is a Python keyword"),
    "digit-package": ({"package_name": "1net"}, "package_name='1net': must be an ASCII Python"),
    "hyphen-package": ({"package_name": "my-net"}, "package_name='my-net'"),
    "upper-package": ({"package_name": "MyNet"}, "package_name='MyNet': must be lower case"),
    "space-slug": ({"project_slug": "my net"}, "project_slug='my net': must be a distribution"),
    "email": ({"author_email": "ada-at-example"}, "author_email='ada-at-example'"),
    "version": ({"version": "one"}, "version='one': must be a PEP 440 version"),
    "old-python": (
        {"python_requires": "3.9"},
        "python_requires='3.9': TensorFlow 2.21 ships wheels for Python 3.10 to 3.13 only",
    ),
    "new-python": ({"python_requires": "3.14"}, "python_requires='3.14': TensorFlow 2.21 ships"),
    "python-patch": ({"python_requires": "3.11.4"}, "python_requires='3.11.4': TensorFlow"),
    "newline-description": ({"description": "two\nlines"}, "description="),
    "stdlib-package": ({"package_name": "json"}, "package_name='json': is the name of a standard"),
    "test-package": ({"package_name": "test"}, "package_name='test': is the name of a standard"),
    "dependency-package": ({"package_name": "keras"}, "package_name='keras': is the name of a"),
    "numpy-package": ({"package_name": "numpy"}, "package_name='numpy': is the name of a package"),
    "long-package": ({"package_name": "p" * 65}, "is 65 characters long; at most 64"),
    "non-ascii-email": ({"author_email": "zoë@example.org"}, "must be an ASCII email address"),
    "empty-name": (
        {"project_name": " ", "project_slug": "x", "package_name": "x"},
        "project_name=' ': must not be empty",
    ),
}


@pytest.mark.parametrize("answers,message", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_bad_answer_fails_in_the_hook_and_leaves_nothing(
    cookies, capfd, tmp_path, answers, message
):
    assert_refused(cookies, capfd, tmp_path, answers, message)


@pytest.mark.parametrize("combo", UNSUPPORTED, ids=combo_id)
def test_unsupported_combination_fails_in_the_hook(cookies, capfd, tmp_path, combo):
    strategy, precision = combo
    assert_refused(
        cookies,
        capfd,
        tmp_path,
        {"distribution_strategy": strategy, "mixed_precision": precision},
        f"distribution_strategy='{strategy}' with mixed_precision='{precision}'",
    )


def test_a_name_built_to_run_code_is_not_executed(cookies, tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"x'''); import os; os.system('touch {marker}'); ('''",
        f'x"""); import os; os.system("touch {marker}"); ("""',
        f"x\\'; __import__('os').system('touch {marker}') #",
    ]
    for payload in payloads:
        result = cookies.bake(
            extra_context={"project_name": payload, "description": payload, "author_name": payload}
        )
        assert result.exit_code == 0, result.exception
        assert not marker.exists()


@pytest.mark.parametrize("user_dir", ["/", "elsewhere"], ids=["above", "elsewhere"])
def test_the_printed_cd_reaches_the_bake_from_where_the_user_stands(
    cookies, capfd, monkeypatch, tmp_path, user_dir
):
    import os

    # cookiecutter runs the hook inside the new project; the user's shell stands at PWD.
    user_dir = "/" if user_dir == "/" else str(tmp_path / "elsewhere")
    monkeypatch.setenv("PWD", user_dir)
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    printed = [line for line in capfd.readouterr().out.splitlines() if line.startswith("  cd ")]
    project = str(result.project_path)
    expected = os.path.relpath(project, "/") if user_dir == "/" else project
    assert printed == [f"  cd {expected}"]
