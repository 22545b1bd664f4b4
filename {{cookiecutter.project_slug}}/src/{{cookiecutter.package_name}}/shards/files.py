"""Which shard files a pattern selects, each checked against the `dataset.json` prepare wrote."""

from __future__ import annotations

import fnmatch
import glob
import json
import os

from ..errors import RunError
from .format import FORMAT, META, SPLITS, checksum

# The package whose `prepare` command writes the shards (this module is one level below it).
PACKAGE = __package__.rpartition(".")[0]


def read_meta(pattern: str) -> dict:
    directory = pattern if os.path.isdir(pattern) else os.path.dirname(pattern)
    path = os.path.join(directory, META)
    if not glob.glob(shard_glob(pattern)):
        raise RunError(
            f"data.files={pattern}: no shards match; write them with `python -m "
            f"{PACKAGE}.prepare data.files=<directory>`"
        )
    try:
        with open(path, encoding="utf-8") as file:
            meta = json.load(file)
        for split in SPLITS:
            prefixes = {key.split(".")[0] for key in meta["splits"][split]["features"]}
            if prefixes != {"x", "y"}:
                raise KeyError(f"features of {split}: {sorted(prefixes)}")
    except FileNotFoundError:
        raise RunError(
            f"data.files={pattern}: no {META} beside the shards; shards written by `python -m "
            f"{PACKAGE}.prepare` have one"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise RunError(f"{path}: not a {META} written by prepare ({error})") from None
    if meta.get("format") != FORMAT:
        raise RunError(f"{path}: format {meta.get('format')!r}; this reader reads {FORMAT!r}")
    return meta


def shard_glob(pattern: str) -> str:
    """The glob of the shards: every `.tfrecord` of a directory (its name taken literally,
    brackets and all), or `pattern` itself."""
    return os.path.join(glob.escape(pattern), "*.tfrecord") if os.path.isdir(pattern) else pattern


def split_files(pattern: str, meta: dict, split: str) -> dict[str, int]:
    """{path: example count} of the matched shards of `split`."""
    directory = pattern if os.path.isdir(pattern) else os.path.dirname(pattern)
    listed = meta["splits"].get(split, {}).get("files", {})
    known = {name for part in meta["splits"].values() for name in part.get("files", {})}
    matched = sorted(glob.glob(shard_glob(pattern)))
    strangers = [path for path in matched if os.path.basename(path) not in known]
    if strangers:
        raise RunError(
            f"data.files={pattern}: {strangers[0]} is not listed in "
            f"{os.path.join(directory, META)}; match only the shards prepare wrote"
        )
    found = {
        path: listed[os.path.basename(path)] for path in matched if os.path.basename(path) in listed
    }
    if not found:
        raise RunError(
            f"data.files={pattern}: matches no {split} shards ({split}-*.tfrecord); "
            "a run reads both train and eval shards"
        )
    _verify(pattern, directory, meta, split, found)
    return found


def _verify(pattern: str, directory: str, meta: dict, split: str, found: dict) -> None:
    """Refuses, in one line naming the file, a shard of `split` that `dataset.json` lists and
    the pattern selects but is missing, and one whose size or sha256 differs from the listed
    one (truncated, changed or corrupted). Shards without listed checksums (older prepares)
    are checked for presence only."""
    part = meta["splits"][split]
    wanted = shard_glob(pattern)
    for name in sorted(part.get("files", {})):
        path = os.path.join(directory, name)
        if fnmatch.fnmatchcase(path, wanted) and path not in found and not os.path.exists(path):
            raise RunError(
                f"data.files={pattern}: {path} is listed in {META} but missing; restore it or "
                "prepare the shards again"
            )
    for path in sorted(found):
        listed = part.get("checksums", {}).get(os.path.basename(path))
        if listed is None:
            continue
        size = os.path.getsize(path)
        if size != listed["bytes"]:
            raise RunError(
                f"data.files={pattern}: {path} holds {size} bytes, {META} lists "
                f"{listed['bytes']} (truncated or changed); restore it or prepare the shards again"
            )
        if checksum(path)["sha256"] != listed["sha256"]:
            raise RunError(
                f"data.files={pattern}: {path} differs from the file prepare wrote (its sha256 "
                f"is not the one {META} lists: changed or corrupted); restore it or prepare the "
                "shards again"
            )
