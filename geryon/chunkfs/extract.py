"""Writing a chunk's files out as plain files, fast and shared among processes.

`plan` opens the chunk once (which checks every record's sums) and lists, for each file,
its path, mode, mtime and where its record lies; `extract` then writes any share of that
list from the chunk file alone, reading each record by its place and checking it again
(both sums, the size its data must decompress to) before its data is written, so a share
needs no second scan of the log.  rcpu's cache unpacks a 64 MiB disk this way with one
plan and a process per core.
"""

import os
from dataclasses import dataclass

import zstandard

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkCorrupt, RecordError
from geryon.chunkfs.record import decode, unpack


@dataclass(frozen=True, slots=True)
class Placed:
    """One file of a chunk and where its record lies."""

    path: str
    mode: int
    mtime_ns: int
    offset: int
    length: int


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
                files.append(Placed(entry.path, entry.mode, entry.mtime_ns, place.offset,
                                    place.length))
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
            buf = os.pread(fd, placed.length, placed.offset)
            try:
                record = decode(buf, placed.offset, base=placed.offset,
                                capacity=plan.capacity)
                data = unpack(record, memoryview(buf)[record.body_offset - placed.offset:],
                              decompressor)
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
