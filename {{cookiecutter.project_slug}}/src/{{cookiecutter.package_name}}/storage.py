"""Why a file could not be written, in one line: the real cause of a storage failure.

Every writer of the package (checkpoints, TensorBoard events, `metrics.jsonl`, `run.json`,
exports, `prepare`, plots, sweep summaries) reports a failed write as a `StorageError` built by
`storage_error`: `<path>: <cause>`. An `OSError` carries its errno; TensorFlow's writers (a
checkpoint's SaveV2, a TFRecord writer) often lose it (`Graph execution error:` and nothing
more), so the path itself is then examined: a part of it that is a file or a link to nothing, a
name longer than the file system allows, a read-only file system, no space or no inodes left.

>>> storage_cause(OSError(36, "File name too long"), "")
'File name too long'
"""

from __future__ import annotations

import errno
import os

from .errors import RunError

# What an errno says, for the failures a user can act on; TensorFlow's messages hold the same
# strerror text, which is how its errors are matched.
KNOWN = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ENOENT,
    errno.ELOOP,
    errno.EMFILE,
)
# Failures that freeing space (or raising a quota or a size limit) fixes.
SPACE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# The space a user can act on is gone well before the last byte: below this, "no space".
LOW_SPACE_BYTES = 2**20


class StorageError(RunError):
    """A file or directory that could not be written: its path and the real cause."""

    def __init__(self, path: str, cause: str):
        super().__init__(f"{path}: {cause}")
        self.path, self.cause = path, cause


def storage_error(path: str, error: BaseException) -> StorageError:
    """The `StorageError` of a failed write of `path` (an `OSError` or TensorFlow's `OpError`)."""
    return StorageError(path, storage_cause(error, path))


def error_number(error: BaseException) -> int | None:
    """The errno of `error`: its own, or the one whose text TensorFlow's message holds."""
    if isinstance(error, OSError) and error.errno:
        return error.errno
    text = str(getattr(error, "message", "") or error)
    for code in KNOWN:
        if os.strerror(code) in text:
            return code
    if "Resource exhausted" in text or type(error).__name__ == "ResourceExhaustedError":
        return errno.ENOSPC  # what a full disk becomes in a kernel that lost the errno
    return None


def storage_cause(error: BaseException, path: str) -> str:
    """One line naming the real cause of a failed write of `path`."""
    code = error_number(error)
    found = examine(path) if path else None
    if code is None:
        return found or _first_line(error)
    said = os.strerror(code)
    if code == errno.ENOSPC:
        return _space(path) or said
    if code == errno.EFBIG:
        return f"{said} (a file size limit, `ulimit -f`, or the file system's largest file)"
    if found:  # a file or a link to nothing in the way says more than "File exists"
        return found if code == errno.EEXIST else f"{said}: {found}"
    if code == errno.EROFS:
        return f"{said}: remount it writable or write elsewhere"
    return said


def examine(path: str) -> str | None:
    """What about `path` stops a write, found by looking at it, or None: a part of it that is a
    file or a link to nothing, a name or a path longer than allowed, a read-only file system,
    no space or no inodes left."""
    absolute = os.path.abspath(path)
    parts = absolute.split(os.sep)
    for end in range(2, len(parts) + 1):
        part = os.sep.join(parts[:end])
        last = end == len(parts)
        if os.path.islink(part) and not os.path.exists(part):
            return f"{part} is a link to {os.readlink(part)}, which does not exist"
        if not os.path.lexists(part):
            break
        if not last and not os.path.isdir(part):
            return f"{part} is a file, not a directory"
    limit = too_long(absolute)
    if limit:
        return limit
    existing = nearest_existing(absolute)
    try:
        stat = os.statvfs(existing)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return f"{existing} is on a read-only file system"
    return _space(existing)


def _space(path: str) -> str | None:
    """`No space left on device` with what is left, when space or inodes have run out."""
    try:
        stat = os.statvfs(nearest_existing(os.path.abspath(path)))
    except OSError:
        return None
    free = stat.f_bavail * stat.f_frsize
    said = os.strerror(errno.ENOSPC)
    if stat.f_files and stat.f_favail == 0:
        left = readable_size(free)
        return f"{said}: no inodes left ({left} free, but no new file can be made)"
    if free < LOW_SPACE_BYTES:
        return f"{said} ({readable_size(free)} free)"
    return None


def too_long(path: str, below: int = 0) -> str | None:
    """Why `path` (with names `below` characters longer written under it) is longer than its
    file system allows, or None."""
    absolute = os.path.abspath(path)
    existing = nearest_existing(absolute)
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        return None
    for name in absolute.split(os.sep):
        if len(os.fsencode(name)) > name_max:
            return (
                f"a name of {len(os.fsencode(name))} bytes ({name[:16]}...), longer than the "
                f"{name_max} this file system allows"
            )
    length = len(os.fsencode(absolute))
    if length + below > path_max:
        under = f", and the files written below it add up to {below} more" if below else ""
        return f"a path of {length} bytes{under}; this file system allows {path_max} per path"
    return None


def nearest_existing(path: str) -> str:
    """`path`, or its nearest ancestor that exists."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def readable_size(num_bytes: int) -> str:
    """`1.5 GB`, `12 bytes`: decimal units."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if num_bytes < 1000 or unit == "TB":
            return f"{num_bytes:.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    return f"{num_bytes} bytes"  # unreachable


def _first_line(error: BaseException) -> str:
    noise = ("[[", "Detected at node", "Graph execution error")
    text = str(getattr(error, "message", "") or error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = next((line for line in lines if not line.startswith(noise)), "")
    return said[:200] or type(error).__name__
