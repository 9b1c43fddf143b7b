"""Paths inside a chunk: '/'-separated, relative to the disk's root, never escaping it.

A path names something on the disk or it is refused; nothing is resolved against anything.
The canonical form has no '.' components and no trailing '/'; the root is the empty string.
"""

import errno

from geryon.chunkfs.errors import ChunkPathError

ROOT = ""
MAX_PATH = 4096  # bytes of UTF-8, as Linux's PATH_MAX
MAX_NAME = 255  # bytes of UTF-8 in one component, as Linux's NAME_MAX


def normalise(path):
    """Return the canonical form of `path`, or raise ChunkPathError saying why it is refused.

    Refused: absolute paths, '..' components (they could escape the disk), empty components
    ('a//b'), NUL bytes, text that is not UTF-8, and paths or names longer than Linux allows.
    '.' components and one trailing '/' are dropped, so '.', './a/' and 'a' are fine.
    """
    if not isinstance(path, str):
        raise ChunkPathError(f"path {path!r} is not text", errno.EINVAL)
    if "\0" in path:
        raise ChunkPathError(f"path {path!r} contains a NUL byte", errno.EINVAL)
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise ChunkPathError(f"path {path!r} is not valid UTF-8", errno.EINVAL) from None
    if size > MAX_PATH:
        raise ChunkPathError(
            f"path {path[:40]!r}... is {size} bytes long; the limit is {MAX_PATH}",
            errno.ENAMETOOLONG)
    if path.startswith("/"):
        raise ChunkPathError(
            f"path {path!r} is absolute; paths on a disk are relative to its root "
            f"(write {path.lstrip('/') or '.'!r})", errno.EINVAL)
    names = path.split("/")
    if len(names) > 1 and names[-1] == "":
        names.pop()  # one trailing '/' as in 'dir/'
    kept = []
    for name in names:
        if name == "..":
            raise ChunkPathError(
                f"path {path!r} has a '..' component, which could escape the disk",
                errno.EINVAL)
        if name == "" and path != ROOT:
            raise ChunkPathError(f"path {path!r} has an empty component", errno.EINVAL)
        if len(name.encode("utf-8")) > MAX_NAME:
            raise ChunkPathError(
                f"path {path[:40]!r}... has a name longer than {MAX_NAME} bytes",
                errno.ENAMETOOLONG)
        if name not in ("", "."):
            kept.append(name)
    return "/".join(kept)


def is_canonical(path):
    """Say whether `path` is a canonical path other than the root (what records may hold)."""
    try:
        return path != ROOT and normalise(path) == path
    except ChunkPathError:
        return False


def parent(path):
    """Return the directory that holds `path` (the root for a top-level name)."""
    return path.rpartition("/")[0]


def join(directory, name):
    """Return the path of `name` inside `directory`."""
    return f"{directory}/{name}" if directory else name


def is_inside(path, directory):
    """Say whether `path` is `directory` itself or lies beneath it."""
    return directory == ROOT or path == directory or path.startswith(directory + "/")
