"""Builds the configuration reference from the code itself (a MkDocs hook), so it cannot drift.

A page holds a marker line that the hook replaces when the site is built:

* `<!-- reference: keys -->`: every key of `config.py`'s dataclasses, with its default (as
  `conf/config.yaml` composes it), what it accepts (the field's check) and the comment above it;
* `<!-- reference: groups -->`: each config group (`task`, `distribute`, `precision`,
  `experiment`, `debug`, `actions`) with its options, from `conf/` and the task modules;
* `<!-- reference: tasks -->`: each task of `tasks/`, its module's docstring (up to its examples)
  and its `task.<key>` keys;
* `<!-- reference: commands -->`: each command of `pyproject.toml`'s `[project.scripts]`, its
  module's docstring rendered by mkdocstrings.

A new key, task or preset appears on the next build with no edit here or in the pages.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

PACKAGE = "{{ cookiecutter.package_name }}"
MARKER = re.compile(r"^<!-- reference: (\w+) -->$", re.MULTILINE)
FIELD = re.compile(r"^\s+(\w+)\s*:\s*[^=]+=")
GROUPS = ("distribute", "precision", "experiment", "debug", "actions")
ACCEPTS = {"positive": "> 0", "non_negative": ">= 0", "fraction": "0 <= x < 1"}


ROOT = Path(__file__).resolve().parents[2]


def on_config(config):
    """Makes this source tree's package importable when it is not installed."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))


def on_page_markdown(markdown, page, config, files):
    return MARKER.sub(lambda match: GENERATORS[match[1]](), markdown)


def comments(cls) -> dict[str, str]:
    """`{field: the comment lines just above it, and its own line's comment}` of a dataclass."""
    found, pending = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        match = FIELD.match(line)
        if match:
            own = line.split("  # ", 1)[1:] if "  # " in line else []
            found[match[1]] = " ".join(pending + own)
        pending = []
    return found


def prose(text: str) -> str:
    """`text` safe in a table cell: `|` escaped, and `<`, `>` outside code spans (`<server>`
    would be read as HTML)."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def accepts(spec) -> str:
    choices = spec.metadata.get("choices")
    if choices:
        return ", ".join(f"`{choice}`" for choice in choices)
    kind = spec.type if isinstance(spec.type, str) else spec.type.__name__
    check = ACCEPTS.get(spec.metadata.get("check"), "")
    return f"{kind} {check}".strip()


def shown(value) -> str:
    if value is None or value == "" or value == {}:
        return "`''`" if value == "" else ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def rows(cls, prefix: str, defaults: dict):
    """A table row per key of the dataclass `cls` (sections inside it are walked)."""
    notes = comments(cls)
    for spec in dataclasses.fields(cls):
        key = f"{prefix}{spec.name}"
        value = defaults.get(spec.name)
        if spec.name in ("task", "actions") or spec.name.startswith("_"):
            continue  # groups are listed by `groups()`; `_target_` is Hydra's
        if isinstance(value, dict) and dataclasses.is_dataclass(spec.default_factory):
            yield from rows(spec.default_factory, f"{key}.", value)
            continue
        yield f"| `{key}` | {shown(value)} | {accepts(spec)} | {prose(notes.get(spec.name, ''))} |"


def composed() -> dict:
    """The default config as `conf/config.yaml` composes it, before any check or resolution."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    importlib.import_module(f"{PACKAGE}.tasks.base").shipped_tasks()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=f"{PACKAGE}.conf", version_base=None):
        config = compose(config_name="config")
    return OmegaConf.to_container(config, resolve=False)


def keys() -> str:
    config = importlib.import_module(f"{PACKAGE}.config")
    table = ["| key | default | accepts | meaning |", "|---|---|---|---|"]
    return "\n".join(table + list(rows(config.Config, "", composed())))


def tasks() -> list:
    """(name, Task class) of every task module of the package, by name."""
    base = importlib.import_module(f"{PACKAGE}.tasks.base")
    found = []
    for module_name in base.task_modules():
        module = importlib.import_module(f"{PACKAGE}.tasks.{module_name}")
        found += [(cls.name, cls) for cls in base.defined_tasks(module)]
    return sorted(found, key=lambda item: item[0])


def first_paragraph(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def description(text: str | None) -> str:
    """A docstring's paragraphs up to its first example (`>>>`), each on one line."""
    paragraphs = []
    for paragraph in (text or "").strip().split("\n\n"):
        if paragraph.lstrip().startswith(">>>"):
            break
        paragraphs.append(prose(" ".join(paragraph.split())))
    return "\n\n".join(paragraphs)


def option_notes(path: Path) -> str:
    """The leading comment of a group option's file, without its `group=name:` prefix."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if "@package" not in line:
            lines.append(line.lstrip("# "))
    text = " ".join(lines)
    return re.sub(r"^[\w\[\]=]+(: | )?", "", text, count=1) if "=" in text.split(" ")[0] else text


def groups() -> str:
    conf = Path(importlib.import_module(f"{PACKAGE}.conf").__file__).parent
    defaults = composed()
    table = ["| group | option | what it sets |", "|---|---|---|"]
    chosen = defaults["distribute"]["strategy"], defaults["precision"]["policy"]
    for name, cls in tasks():
        target = f"{cls.__module__}.{cls.__qualname__}"
        mark = " (default)" if target == defaults["task"]["_target_"] else ""
        table.append(f"| `task` | `{name}`{mark} | {prose(first_paragraph(cls.__doc__))} |")
    for group in GROUPS:
        for path in sorted((conf / group).glob("*.yaml")):
            mark = " (default)" if path.stem in chosen else ""
            option = f"[{path.stem}]" if group == "actions" else path.stem
            table.append(f"| `{group}` | `{option}`{mark} | {prose(option_notes(path))} |")
    return "\n".join(table)


def task_keys() -> str:
    sections = []
    for name, cls in tasks():
        module = sys.modules[cls.__module__]
        lines = [f"### `task={name}`", "", description(module.__doc__), ""]
        defaults = dataclasses.asdict(cls.config_class())
        table = list(rows(cls.config_class, "task.", defaults))
        if table:
            lines += ["| key | default | accepts | meaning |", "|---|---|---|---|", *table]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def commands() -> str:
    """A section per console script, its module's docstring rendered by mkdocstrings."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    scripts = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    sections = []
    for name, module in re.findall(r'^(\S+) = "([\w.]+):\w+"', scripts, re.MULTILINE):
        command = module.rsplit(".", 1)[1]
        sections.append(
            f"## `{command}`\n\n`python -m {module}`, or `{name}`.\n\n::: {module}\n"
            "    options:\n      members: false\n      show_root_heading: false\n"
        )
    return "\n".join(sections)


GENERATORS = {"keys": keys, "groups": groups, "tasks": task_keys, "commands": commands}
