"""Checks every answer before anything is written; a bad one stops the bake with one line.

Values are read as data: Jinja turns each into a JSON string literal (`tojson` escapes quotes,
so no value can end the raw string below), and nothing a user typed is ever run as code.
Cookiecutter deletes the half-made output directory when this hook exits non-zero.
"""

import json
import keyword
import re
import sys

ANSWERS = json.loads(r"""{
  "project_name": {{ cookiecutter.project_name | tojson }},
  "project_slug": {{ cookiecutter.project_slug | tojson }},
  "package_name": {{ cookiecutter.package_name | tojson }},
  "author_name": {{ cookiecutter.author_name | tojson }},
  "author_email": {{ cookiecutter.author_email | tojson }},
  "description": {{ cookiecutter.description | tojson }},
  "version": {{ cookiecutter.version | tojson }},
  "python_requires": {{ cookiecutter.python_requires | tojson }},
  "default_task": {{ cookiecutter.default_task | tojson }},
  "distribution_strategy": {{ cookiecutter.distribution_strategy | tojson }},
  "mixed_precision": {{ cookiecutter.mixed_precision | tojson }},
  "python_versions": {{ cookiecutter._python_versions | tojson }},
  "tensorflow_version": {{ cookiecutter._tensorflow_version | tojson }},
  "unsupported_combinations": {{ cookiecutter._unsupported_combinations | tojson }}
}""")

# PEP 508 distribution name; PEP 440 public version; an address with one @ and a dotted domain.
SLUG = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
# ASCII only: pip refuses project metadata whose author email is not (PEP 621 via setuptools).
EMAIL = re.compile(r"^[!-?A-~]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
STRATEGIES = ("none", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
TASKS = ("regression", "image_classification", "sequence")


# What a baked project imports: a package of the same name would hide it (or be hidden by it).
DEPENDENCIES = (
    "absl", "google", "h5py", "hydra", "ipykernel", "keras", "matplotlib", "ml_dtypes",
    "nbclient", "nbformat", "numpy", "omegaconf", "pytest", "ruff", "scipy", "setuptools",
    "sklearn", "tensorboard", "tensorflow", "tqdm", "yaml",
)  # fmt: skip
MAX_NAME = 64  # a folder and a distribution name; long names break paths on some systems


def check_package_name(value):
    if not value.isidentifier() or not value.isascii():
        return "must be an ASCII Python identifier (letters, digits, _; not starting with a digit)"
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return "is a Python keyword; choose another name"
    if value != value.lower():
        return "must be lower case (PEP 8 package names)"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long; at most {MAX_NAME}"
    if value in sys.stdlib_module_names or value in ("test", "tests"):
        return "is the name of a standard-library module, which it would hide; choose another"
    if value in DEPENDENCIES:
        return "is the name of a package the project depends on; choose another"
    return None


def check_slug(value):
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long; at most {MAX_NAME}"
    return pattern(
        SLUG,
        "a distribution name: letters, digits, '.', '_', '-', "
        "starting and ending with a letter or digit",
    )(value)


def check_one_line(value):
    if not value.strip():
        return "must not be empty"
    if any(ord(char) < 32 or 0xD800 <= ord(char) <= 0xDFFF or ord(char) > 0xFFFF for char in value):
        return "must be one line of printable characters (no control characters or emoji)"
    return None


def python_version(versions, tensorflow):
    """Only a Python that TensorFlow ships wheels for: pip finds no TensorFlow for any other."""
    oldest, newest = versions[0], versions[-1]
    message = f"TensorFlow {tensorflow} ships wheels for Python {oldest} to {newest} only"
    return lambda value: None if value in versions else message


def pattern(regex, allowed):
    return lambda value: None if regex.match(value) else f"must be {allowed}"


def choice(options):
    return lambda value: None if value in options else f"must be one of {', '.join(options)}"


CHECKS = {
    "project_name": check_one_line,
    "project_slug": check_slug,
    "package_name": check_package_name,
    "author_name": check_one_line,
    "author_email": pattern(EMAIL, "an ASCII email address like name@example.org"),
    "description": check_one_line,
    "version": pattern(VERSION, "a PEP 440 version like 0.1.0"),
    "python_requires": python_version(ANSWERS["python_versions"], ANSWERS["tensorflow_version"]),
    "default_task": choice(TASKS),
    "distribution_strategy": choice(STRATEGIES),
    "mixed_precision": choice(PRECISIONS),
}


def problems(answers):
    """Every bad answer as `key=value: what is allowed`, in prompt order."""
    found = []
    for key, check in CHECKS.items():
        message = check(answers[key])
        if message:
            found.append(f"{key}={answers[key]!r}: {message}")
    for rule in answers["unsupported_combinations"]:
        if (answers["distribution_strategy"], answers["mixed_precision"]) == (
            rule["distribution_strategy"],
            rule["mixed_precision"],
        ):
            found.append(
                f"distribution_strategy={rule['distribution_strategy']!r} with "
                f"mixed_precision={rule['mixed_precision']!r}: not supported "
                f"({rule['reason']})"
            )
    return found


def main():
    found = problems(ANSWERS)
    for line in found:
        print(f"ERROR: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
