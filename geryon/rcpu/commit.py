"""Committing what a block left on its output disk: the overlay's upper layer, applied to
the disk's chunk as one transaction (Chunk.atomic), or not at all.

The upper layer holds exactly what the block changed: new and changed files whole (the
overlay copies a file up before changing it), directories it made, a whiteout (a character
device 0:0) for each name it removed, and an opaque directory (xattr trusted.overlay.opaque
= y) where it removed a directory and made one again under the same name.  Anything else
(a symbolic link, a fifo, a socket) cannot be kept on a chunk disk, and the whole commit is
refused, saying what and where.
"""

import os
import stat as statmod
from pathlib import Path

from geryon.chunkfs.errors import ChunkError
from geryon.errors import GeryonError


class CommitError(GeryonError):
    """The block exited 0 but what it wrote could not be kept; nothing of it was."""


def is_whiteout(st: os.stat_result) -> bool:
    return statmod.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def changes(upper: Path):
    """Yield (op, relative path, stat) for the upper layer, each directory before what it
    holds: op is 'file', 'dir', 'opaque-dir' or 'remove'."""
    top = os.fspath(upper)
    stack = [""]
    while stack:
        relative = stack.pop()
        here = os.path.join(top, relative) if relative else top
        with os.scandir(here) as entries:
            names = sorted(entries, key=lambda e: e.name, reverse=True)
        for entry in reversed(names):
            path = f"{relative}/{entry.name}" if relative else entry.name
            st = entry.stat(follow_symlinks=False)
            if statmod.S_ISREG(st.st_mode):
                yield "file", path, st
            elif statmod.S_ISDIR(st.st_mode):
                yield ("opaque-dir" if is_opaque(entry.path) else "dir"), path, st
                stack.append(path)
            elif is_whiteout(st):
                yield "remove", path, st
            else:
                kind = ("a symbolic link" if statmod.S_ISLNK(st.st_mode) else
                        "a fifo" if statmod.S_ISFIFO(st.st_mode) else
                        "a socket" if statmod.S_ISSOCK(st.st_mode) else "a device")
                raise CommitError(f"the block left {kind} at {path}; an output disk keeps "
                                  "files and directories only, so nothing it wrote was kept")


def commit(chunk, upper: Path, disk: str) -> int:
    """Apply the upper layer to the chunk in one transaction; return the files written.
    CommitError (nothing kept) if the chunk refuses any of it (full, say)."""
    written = 0
    found = list(changes(upper))
    size = sum(st.st_size for op, _, st in found if op == "file")
    if size > chunk.free:
        raise CommitError(f"the block exited 0 but left {size} bytes on {disk}, which has "
                          f"{chunk.free} free; nothing it wrote there was kept")
    try:
        with chunk.atomic():
            for op, path, st in found:
                exists = chunk.exists(path)
                if op == "remove":
                    if exists:
                        chunk.remove(path, recursive=True)
                elif op in ("dir", "opaque-dir"):
                    if exists and (op == "opaque-dir" or not chunk.stat(path).is_dir):
                        chunk.remove(path, recursive=True)
                        exists = False
                    if not exists:
                        chunk.mkdir(path, st.st_mode & 0o777, st.st_mtime)
                else:
                    if exists and chunk.stat(path).is_dir:
                        chunk.remove(path, recursive=True)
                    with open(upper / path, "rb") as f:
                        chunk.write(path, f.read(), st.st_mode & 0o777, st.st_mtime)
                    written += 1
    except ChunkError as err:
        raise CommitError(f"the block exited 0 but its output could not be kept on {disk}: "
                          f"{err}; nothing it wrote there was kept") from None
    return written
