"""Writing a chunk's files out as plain files, fast and shared among processes.

`plan` opens the chunk once (which checks both sums of every record) and lists, for each
file, its path, mode, mtime, size and where its record and body lie; `extract` then
writes any share of that list from the chunk file alone, reading each body by its place
and decompressing it to exactly the size the record states, so a share needs no second
scan of the log.  extract trusts the file not to have changed since plan checked it: it
is for images a process has received and holds privately (rcpu's cache), not for a chunk
a node is writing.  rcpu's cache unpacks a 64 MiB disk this way with one
plan and a process per core.
"""

import os
from dataclasses import dataclass

import zstandard

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkCorrupt, RecordError
from geryon.chunkfs.record import Kind, Record, unpack


@dataclass(frozen=True, slots=True)
class Placed:
    """One file of a chunk and where its record lies."""

    path: str
    mode: int
    mtime_ns: int
    size: int
    offset: int
    length: int
    body_len: int
    flags: int


@dataclass
class Plan:
    """What extract() needs: the directories to make and the files, in walk order."""

    capacity: int
    directories: list[str]
    files: list[Placed]


def plan(image) -> Plan:
    """List a chunk's directories and files with their places (the chunk is checked)."""
    with Chunk.open(image, readonly=True) as chunk:
        directories, files = [], []
        for entry in chunk.walk():
            if entry.is_dir:
                directories.append(entry.path)
            else:
                place = chunk.place(entry.path)
                files.append(Placed(entry.path, entry.mode, entry.mtime_ns, entry.size,
                                    place.offset, place.length, place.body_len, place.flags))
        return Plan(chunk.capacity, directories, files)


def extract(image, dest, plan: Plan, part: int = 0, parts: int = 1) -> int:
    """Write every parts-th file of the plan (from number `part`) under dest, each record
    read and checked again on the way; return the bytes written.  Paths come from the
    chunk's index, which refuses any that would climb out of dest."""
    top = os.fspath(dest)
    for directory in plan.directories:  # every share makes them all: cheap, and no race
        os.makedirs(os.path.join(top, directory), exist_ok=True)
    decompressor = zstandard.ZstdDecompressor()
    written = 0
    fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for placed in plan.files[part::parts]:
            body = os.pread(fd, placed.body_len,
                            placed.offset + placed.length - placed.body_len)
            record = Record(placed.offset, Kind.FILE, placed.path, size=placed.size,
                            flags=placed.flags, body_len=placed.body_len,
                            length=placed.length)
            try:
                data = unpack(record, body, decompressor)
            except RecordError as err:
                raise ChunkCorrupt(f"chunk {image}: cannot read {placed.path!r}: its {err}")
            target = os.path.join(top, placed.path)
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                          placed.mode & 0o777)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
            finally:
                os.close(out)
            os.utime(target, ns=(placed.mtime_ns, placed.mtime_ns))
            written += len(data)
    finally:
        os.close(fd)
    return written


def extract_share(image, dest, part: int = 0, parts: int = 1) -> int:
    """plan() and extract() one share in one process: with a process per share the plans
    are made side by side, and no listing is passed between processes."""
    return extract(image, dest, plan(image), part, parts)
