"""The errors a chunk raises. All are GeryonErrors: their messages are fit for people.

Each carries an `errno` so that a server can answer in its own protocol's terms (the node's
SFTP tree turns ENOENT into "no such file", ENOSPC into "no space", and so on).
"""

import errno as _errno

from geryon.errors import GeryonError


class ChunkError(GeryonError):
    """Something about a chunk: its file, its contents, or a request made of it."""

    errno = _errno.EIO

    def __init__(self, message, errno=None):
        super().__init__(message)
        if errno is not None:
            self.errno = errno


class ChunkCorrupt(ChunkError):
    """The file is not a sound chunk: a bad header, or damage that is not a torn tail."""


class ChunkFull(ChunkError):
    """A write would take the chunk past its capacity; nothing was written."""

    errno = _errno.ENOSPC

    def __init__(self, message, needed, free):
        super().__init__(message)
        self.needed = needed
        self.free = free


class ChunkPathError(ChunkError):
    """A path that escapes the disk, or names what is not there (errno says which)."""

    errno = _errno.EINVAL


class RecordError(ChunkError):
    """Bytes that do not decode as a record (the sans-I/O layer's error).

    `offset` is where the record starts in the chunk file and `reason` ends the sentence
    "record at offset N ...", so a chunk can put its own name in front. `inside` says the
    record was written whole (its head is sound) yet breaks the format's rules: no crash
    leaves that, so it is never a torn tail. `short` says the bytes simply stop before the
    record does: what a copy of a log still being received looks like.
    """

    def __init__(self, offset, reason, inside=False, short=False):
        super().__init__(f"record at offset {offset} {reason}")
        self.offset = offset
        self.reason = reason
        self.inside = inside
        self.short = short


class ImageRefused(ChunkError):
    """A chunk image sent to fill a chunk was not taken; the chunk is as it was."""
