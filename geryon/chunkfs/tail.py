"""A copy of a log's tail, checked before a replica takes it (sans I/O).

Theory of operation. A replica is a prefix of its master's log, byte for byte: the master
only appends, so the bytes it holds past the replica's end are records that belong at
exactly the replica's end (each record's head sum is seeded with its offset, so a record
is sound only where it was written). take() decodes the received bytes record by record
from the replica's end, checking both xxh3 sums and the tree's rules as an open would, and
says how many bytes may be appended: every whole record outside a group, and a group only
with its COMMIT. Bytes that stop inside a record, or inside a group, are left for the next
copy; a record that is damaged, or that the tree refuses, is an error, and nothing is
taken, because no sound master sends one.
"""

from dataclasses import dataclass

from geryon.chunkfs.errors import ChunkCorrupt, ChunkPathError, RecordError
from geryon.chunkfs.record import Kind, decode
from geryon.chunkfs.tree import Tree


@dataclass
class Taken:
    """What of a received tail may be appended: its first `length` bytes, making `tree`."""

    length: int
    tree: Tree
    records: int


def take(data, start: int, tree: Tree, capacity: int) -> Taken:
    """Check the bytes `data`, received to lie at offset `start` of a chunk whose tree is
    now `tree`; return how much of them to append (`tree` itself is left as it is)."""
    view = memoryview(data)
    after = tree.copy()
    taken, committed, records, counted = start, after, 0, 0
    group = None  # the tree as it was before the open group's BEGIN
    offset, end = start, start + len(view)
    while offset < end:
        try:
            record = decode(view, offset, base=start, capacity=capacity)
        except RecordError as err:
            if err.short:
                break  # the rest comes with the next copy
            raise ChunkCorrupt(f"the master's log: {err}; nothing of it was copied") from None
        if record.kind is Kind.BEGIN:
            if group is not None:
                raise ChunkCorrupt(f"the master's log: record at offset {offset} begins a "
                                   "group inside another group; nothing of it was copied")
            group, after = after, after.copy()
        elif record.kind is Kind.COMMIT:
            if group is None:
                raise ChunkCorrupt(f"the master's log: record at offset {offset} ends a "
                                   "group that never began; nothing of it was copied")
            group = None
        else:
            try:
                after.check(record)
            except ChunkPathError as err:
                raise ChunkCorrupt(f"the master's log: record at offset {offset} breaks the "
                                   f"tree's rules: {err}; nothing of it was copied") from None
            after.apply(record)
        offset = record.end
        records += 1
        if group is None:
            taken, committed, counted = offset, after, records
    return Taken(taken - start, committed if taken > start else tree, counted)
