"""Chunk disks: a small file system in one file of at most 64 MiB (by default).

A chunk is an append-only log of checksummed records (docs/chunk-format.md) whose index is
rebuilt on open; a torn tail is cut off and reported, and compaction rewrites the live
records atomically. A chunk stands alone: copy the file and you have the disk.

    with Chunk.create("chunk0") as disk:
        disk.write("mail/1", b"From: ...")
    with Chunk.open("chunk0") as disk:
        print(disk.read("mail/1"), disk.free)
"""

from geryon.chunkfs.chunk import DEFAULT_LEVEL, Chunk
from geryon.chunkfs.errors import (ChunkCorrupt, ChunkError, ChunkFull, ChunkPathError,
                                   RecordError)
from geryon.chunkfs.fsck import FsckReport
from geryon.chunkfs.paths import ROOT, normalise
from geryon.chunkfs.record import DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY
from geryon.chunkfs.sizes import format_size, parse_size
from geryon.chunkfs.tarstream import ImportResult, export_tar, import_tar
from geryon.chunkfs.tree import Entry

__all__ = [
    "Chunk", "Entry", "FsckReport", "ImportResult", "export_tar", "import_tar", "normalise",
    "ROOT", "DEFAULT_CAPACITY", "MIN_CAPACITY", "MAX_CAPACITY", "DEFAULT_LEVEL",
    "ChunkError", "ChunkCorrupt", "ChunkFull", "ChunkPathError", "RecordError",
    "format_size", "parse_size",
]
