"""Removes what the chosen options do not need, cuts the exercises, prints the next steps."""

import ast
import json
import os
import re
import shutil
from pathlib import Path

ANSWERS = json.loads(r"""{
  "project_slug": {{ cookiecutter.project_slug | tojson }},
  "package_name": {{ cookiecutter.package_name | tojson }},
  "license": {{ cookiecutter.license | tojson }},
  "starter_kit": {{ cookiecutter.starter_kit | tojson }}
}""")

# Solution bodies in src/ sit between these two comment lines. An exercise's brief (what to
# write) is the run of comment lines right after the first marker, from `# Exercise `NAME``.
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# exercise begin: (?P<name>\w+)[ \t]*$")
END = re.compile(r"^[ \t]*# exercise end[ \t]*$")
COMMENT = re.compile(r"^[ \t]*#")
# The exercises kit keeps every import for the student, so some are unused until they write.
KEEP_IMPORTS = "# ruff: noqa: F401 - the exercises below use these imports\n"
KITS = ("none", "solutions", "exercises")
# What only a teaching kit holds (paths below the project; `{package}` is the package's folder):
# the grader, the chapter's demos with their tests, the mutation tool, the teaching pages.
TEACHING = (
    "src/{package}/check.py",
    "src/{package}/grading.py",
    "src/{package}/tensors.py",
    "src/{package}/autodiff.py",
    "tests/test_check.py",
    "tests/test_grading.py",
    "tests/test_mutants.py",
    "tests/test_tensors.py",
    "tests/test_autodiff.py",
    "tools",
    "docs/teaching.md",
)
# What only the students' kit holds: the workflow that grades each push.
STUDENTS = (".github/workflows/grade.yml",)


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def remove_unneeded(answers):
    if answers["license"] == "Proprietary":
        remove("LICENSE")
    kit = answers["starter_kit"]
    if kit == "none":
        for path in TEACHING:
            remove(path.format(package=answers["package_name"]))
    if kit != "exercises":
        for path in STUDENTS:
            remove(path)


def unfinished_body(indent, name, line_length=100):
    """The body an exercise starts with; its message is what check.py and the tests look for.

    Laid out the way `ruff format` would lay it out, so the bake stays format-clean.
    """
    message = f'"Exercise {name}: not written yet (the comment above says what to write)"'
    one_line = f"{indent}raise NotImplementedError({message})\n"
    if len(one_line) - 1 <= line_length:
        return [one_line]
    return [f"{indent}raise NotImplementedError(\n", f"{indent}    {message}\n", f"{indent})\n"]


def split_brief(name, body):
    """(brief, solution): the comment lines that open `body` when they start the exercise's
    brief (`# Exercise `name``), else nothing.

    >>> split_brief("loss", ["# Exercise `loss`: a mean\\n", "# of e\\n", "return e\\n"])
    (['# Exercise `loss`: a mean\\n', '# of e\\n'], ['return e\\n'])
    """
    if not body or not body[0].lstrip().startswith(f"# Exercise `{name}`"):
        return [], body
    end = next((i for i, line in enumerate(body) if not COMMENT.match(line)), len(body))
    return body[:end], body[end:]


def cut_exercises(lines, kit):
    """Drops the marker lines and, by kit, what they enclose: `solutions` keeps the brief and
    the solution, `exercises` the brief and the unfinished stub, `none` the solution only."""
    out, name, body, indent = [], None, [], ""
    for number, line in enumerate(lines, start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin and name is None:
            name, body, indent = begin["name"], [], begin["indent"]
        elif end and name is not None:
            brief, solution = split_brief(name, body)
            if kit == "exercises":
                out.extend([*brief, *unfinished_body(indent, name)])
            else:
                out.extend([*brief, *solution] if kit == "solutions" else solution)
            name = None
        elif begin or end:
            raise ValueError(f"line {number}: unbalanced exercise marker: {line.strip()}")
        elif name is None:
            out.append(line)
        else:
            body.append(line)
    if name is not None:
        raise ValueError(f"exercise {name}: no '# exercise end'")
    return out


def keep_imports(lines):
    """Puts KEEP_IMPORTS on the line before the first import statement (after the module's
    docstring, whose lines may start with "from" too)."""
    tree = ast.parse("".join(lines))
    first = next(n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))) - 1
    return [*lines[:first], KEEP_IMPORTS, *lines[first:]]


def write_starter_kit(answers, source_root="src"):
    kit = answers["starter_kit"]
    for path in sorted(Path(source_root).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        if not any(BEGIN.match(line) or END.match(line) for line in lines):
            continue
        try:
            lines = cut_exercises(lines, kit)
        except ValueError as error:
            raise SystemExit(f"ERROR: {path}: {error}") from None
        path.write_text("".join(keep_imports(lines) if kit == "exercises" else lines), "utf-8")
    if kit == "exercises":
        os.replace("README.exercises.md", "README.md")
    remove("README.exercises.md")


def where_from_the_user(project_dir, user_dir):
    """The project's path as the user's shell reaches it: relative below the directory the user
    ran cookiecutter from (the shell's PWD), else absolute.

    >>> where_from_the_user("/home/ada/build/demo/p", "/home/ada")
    'build/demo/p'
    >>> where_from_the_user("/tmp/out/p", "/home/ada")
    '/tmp/out/p'
    """
    relative = os.path.relpath(project_dir, user_dir) if user_dir else project_dir
    return project_dir if relative.startswith("..") else relative


def next_steps(answers, project_dir=None, user_dir=None):
    package = answers["package_name"]
    project_dir = project_dir or os.getcwd()  # cookiecutter runs the hook inside the project
    user_dir = os.environ.get("PWD") if user_dir is None else user_dir
    steps = [
        f"Baked {answers['project_slug']}. Next steps:",
        f"  cd {where_from_the_user(project_dir, user_dir)}",
        "  python -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]'",
        "  pytest -m 'not slow'",
    ]
    if answers["starter_kit"] == "exercises":
        return "\n".join([*steps, f"  python -m {package}.check   # the exercises, in order"])
    return "\n".join([*steps, f"  python -m {package}.train run_dir=runs/first"])


def main():
    remove_unneeded(ANSWERS)
    write_starter_kit(ANSWERS)
    print(next_steps(ANSWERS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
