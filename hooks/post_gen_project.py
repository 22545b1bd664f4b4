"""Removes what the chosen options do not need and prints the next steps."""

import json
import os
import shutil

ANSWERS = json.loads(r'''{
  "project_slug": {{ cookiecutter.project_slug | tojson }},
  "package_name": {{ cookiecutter.package_name | tojson }},
  "license": {{ cookiecutter.license | tojson }}
}''')


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def remove_unneeded(answers):
    if answers["license"] == "Proprietary":
        remove("LICENSE")


def next_steps(answers):
    package = answers["package_name"]
    return "\n".join([
        f"Baked {answers['project_slug']}. Next steps:",
        f"  cd {answers['project_slug']}",
        "  python -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]'",
        "  pytest -m 'not slow'",
        f"  python -m {package}.train run_dir=runs/first",
    ])


def main():
    remove_unneeded(ANSWERS)
    print(next_steps(ANSWERS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
