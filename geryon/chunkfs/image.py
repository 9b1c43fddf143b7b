"""Chunk images: a whole chunk file received to fill an empty chunk (image-put, docs/disk.md).

Theory of operation. The image is written to a hidden file beside the chunk it is to
replace (`.chunkN.incoming`), never more bytes than that chunk's capacity, and fsynced. It
is then opened as a chunk that must be whole (Chunk.open with whole=True): every record
sound, nothing cut off, no file larger than the chunk can hold, and every file record's
data decompressing to exactly its stated size; and its capacity may not exceed the chunk's.
Only then is it renamed over the chunk file and the directory fsynced, so the chunk is at
every moment either as it was or the whole image. The chunk opened for the check is the
one served afterwards, not read again. A crash before the rename leaves the hidden file,
which `leftovers` finds so that the node can remove it when it starts.

No asyncio here: a server feeds what it receives to IncomingImage.write, runs check() in a
worker thread (it touches only the incoming file), and install() on its own thread.
"""

import errno
import os
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkError, ImageRefused
from geryon.chunkfs.record import HEADER_SIZE

_SUFFIX = ".incoming"


def incoming_path(chunk_path) -> Path:
    """Where an image for the chunk at `chunk_path` is received."""
    chunk_path = Path(chunk_path)
    return chunk_path.with_name(f".{chunk_path.name}{_SUFFIX}")


def leftovers(directory) -> list[Path]:
    """Images in `directory` whose receiving was cut off (by a crash): safe to remove."""
    return sorted(Path(directory).glob(f".*{_SUFFIX}"))


def refuse_unless_empty(chunk: Chunk) -> None:
    """Raise ImageRefused if `chunk` holds anything but its header."""
    if chunk.live > HEADER_SIZE:
        raise ImageRefused(f"chunk {chunk.path} is not empty; an image only fills an empty "
                           "chunk: remove what it holds first, or send the image to an "
                           "empty chunk", errno.ENOTEMPTY)


class IncomingImage:
    """An image being received for the empty chunk `chunk`; use it as a context manager,
    which removes the received file unless the image was installed.  replace=True: the
    chunk need not be empty (a replica fetching its master's log again after a compaction),
    and its content is replaced whole."""

    def __init__(self, chunk: Chunk, replace: bool = False):
        if not replace:
            refuse_unless_empty(chunk)
        self.chunk = chunk
        self.replace = replace
        self.path = incoming_path(chunk.path)
        self.size = 0
        self.installed = False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise ImageRefused(f"image refused: another image for chunk {chunk.path} is "
                               "being received; wait for it to finish", errno.EBUSY) from None
        except OSError as err:
            raise ImageRefused(f"image refused: cannot make {self.path}: {err.strerror}",
                               err.errno) from None
        self._file = os.fdopen(fd, "wb")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()

    def write(self, data: bytes) -> None:
        """Add received bytes; refuse at once an image larger than the chunk's capacity."""
        self.size += len(data)
        if self.size > self.chunk.capacity:
            raise ImageRefused(f"image refused: it is larger than chunk {self.chunk.path}'s "
                               f"capacity of {self.chunk.capacity} bytes", errno.EFBIG)
        self._file.write(data)

    def check(self) -> Chunk:
        """Sync what was received and check it whole; return it open, holding its lock."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        try:
            image = Chunk.open(self.path, whole=True)
        except ChunkError as err:
            raise ImageRefused(f"image refused: {err}", err.errno) from None
        if image.capacity > self.chunk.capacity:
            image.close()
            raise ImageRefused(f"image refused: it holds a chunk of {image.capacity} bytes, "
                               f"more than chunk {self.chunk.path}'s {self.chunk.capacity}",
                               errno.EFBIG)
        return image

    def install(self, image: Chunk) -> Chunk:
        """Put the checked `image` in place of the chunk, atomically; return it, now the chunk.

        The chunk must still be empty (it was served while the image came in). If the
        rename fails the chunk is as it was and still open; once it is done the old chunk
        is closed.
        """
        try:
            if not self.replace:
                refuse_unless_empty(self.chunk)
            image.move(self.chunk.path)
        except BaseException:
            image.close()
            raise
        self.installed = True  # the received file is the chunk now: discard leaves it be
        self.chunk.close()
        return image

    def discard(self) -> None:
        """Remove the received file unless it was installed; calling twice is harmless."""
        self._file.close()
        if not self.installed:
            self.path.unlink(missing_ok=True)
