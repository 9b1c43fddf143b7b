"""Checking a chunk whole: its header, every record, the tree they make, every file's data.

Sans-I/O: check() takes the chunk's bytes and the tree a Chunk holds, and reports; it
changes nothing. Chunk.fsck reads the file and calls it.
"""

from dataclasses import dataclass, field

from geryon.chunkfs.errors import ChunkCorrupt, RecordError
from geryon.chunkfs.record import HEADER_SIZE, check_data, decode, decode_header, scan
from geryon.chunkfs.sizes import format_size
from geryon.chunkfs.tree import replay


@dataclass
class FsckReport:
    """What fsck found: sizes, counts, and problems (each a sentence; none if sound)."""

    chunk: str
    capacity: int
    used: int
    live: int  # bytes a compacted chunk would use
    records: int
    files: int
    dirs: int
    problems: list = field(default_factory=list)
    repair: str | None = None  # what opening the chunk cut, if anything

    @property
    def ok(self):
        return not self.problems

    def __str__(self):
        state = "sound" if self.ok else _count(len(self.problems), "problem")
        lines = [f"chunk {self.chunk}: {state}; {_count(self.records, 'record')}, "
                 f"{_count(self.files, 'file')}, {_count(self.dirs, 'directory')}; "
                 f"{format_size(self.used)} used of "
                 f"{format_size(self.capacity)}, {format_size(self.used - self.live)} "
                 "reclaimable by compaction"]
        lines += [f"chunk {self.chunk}: {problem}" for problem in self.problems]
        return "\n".join(lines)


def _count(number, noun):
    if number == 1:
        return f"1 {noun}"
    return f"{number} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def check(chunk, buf, tree, decompressor):
    """Return an FsckReport on the chunk named `chunk` whose file holds `buf` and whose
    index, as read when it was opened and changed since, is `tree`."""
    try:
        header = decode_header(buf)
    except ChunkCorrupt as err:
        return FsckReport(chunk, 0, len(buf), 0, 0, 0, 0, [str(err)])
    problems = []
    if len(buf) > header.capacity:
        problems.append(f"the file is {len(buf)} bytes long, more than its capacity of "
                        f"{header.capacity}")
    found = scan(buf, capacity=header.capacity)
    rebuilt, replay_damage = replay(found.records)
    for damage in (found.damage, replay_damage):
        if damage is not None:
            where = ("damage inside the chunk: `geryon chunk fsck --repair` cuts it there"
                     if damage.inside else "a torn tail: opening the chunk for writing cuts it")
            problems.append(f"{damage} ({where})")
    if list(rebuilt.walk()) != list(tree.walk()):
        problems.append("its records no longer describe the tree read when it was opened: "
                        "another program has changed the file")
    view = memoryview(buf)
    for entry in rebuilt.walk():
        if entry.is_dir:
            continue
        place = rebuilt.place(entry.path)
        try:
            record = decode(buf, place.offset, capacity=header.capacity)
            check_data(record, view[record.body_offset:record.end], decompressor)
        except RecordError as err:
            problems.append(f"file {entry.path!r}: its {err}")
    files, dirs = rebuilt.counts()
    return FsckReport(chunk, header.capacity, len(buf), HEADER_SIZE + rebuilt.live_bytes(),
                      len(found.records), files, dirs, problems)
