"""Chunk disks: a small file system in one file of at most 64 MiB (by default).

A chunk is an append-only log of checksummed records (docs/chunk-format.md) whose index is
rebuilt on open; a torn tail is cut off and reported, and compaction rewrites the live
records atomically. A chunk stands alone: copy the file and you have the disk.

    with Chunk.create("chunk0") as disk:
        disk.write("mail/1", b"From: ...")
    with Chunk.open("chunk0") as disk:
        print(disk.read("mail/1"), disk.free)

record (the bytes of headers and records, sans I/O), tree (the index they replay into),
chunk (the file), fsck, tarstream (tar in and out), image (receiving a whole chunk image
and installing it), disk (a chunk served as a geryon.ns tree).

The names below are loaded on first use, so that importing one pure module of the package
(record, tree) loads no more of it than it needs: no tar streams, no asyncio.
"""

import importlib

_PUBLIC = {
    "Chunk": "geryon.chunkfs.chunk", "DEFAULT_LEVEL": "geryon.chunkfs.chunk",
    "IndexEntry": "geryon.chunkfs.tree", "FsckReport": "geryon.chunkfs.fsck",
    "ImportResult": "geryon.chunkfs.tarstream", "export_tar": "geryon.chunkfs.tarstream",
    "import_tar": "geryon.chunkfs.tarstream",
    "IncomingImage": "geryon.chunkfs.image",
    "ROOT": "geryon.chunkfs.paths", "normalise": "geryon.chunkfs.paths",
    "format_size": "geryon.chunkfs.sizes", "parse_size": "geryon.chunkfs.sizes",
    **{name: "geryon.chunkfs.record" for name in ("DEFAULT_CAPACITY", "MIN_CAPACITY",
                                                   "MAX_CAPACITY")},
    **{name: "geryon.chunkfs.errors" for name in ("ChunkError", "ChunkCorrupt", "ChunkFull",
                                                   "ChunkPathError", "ImageRefused",
                                                   "RecordError")},
}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'geryon.chunkfs' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
