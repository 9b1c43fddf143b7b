"""Chunk bytes without files: the chunk header, log records, and the scan that finds them.

This module is sans-I/O: it turns values into bytes and bytes into values, and says what is
wrong with bytes that are not a chunk. chunk.py does the reading, writing and fsyncing.
docs/chunk-format.md describes the same layout for readers without this code.

Theory of operation. A chunk file is a 48-byte header followed by records laid end to end.
A record is a 48-byte head, the path it acts on, and a body (file data, or a rename's new
path). The head carries two XXH3-64 sums: one of the path and body, and one of the head
itself seeded with the record's offset in the file. Because of the seed a head is sound only
where it was written, so file data that happens to hold a copy of a record (a chunk stored
in a chunk) never passes for one. That makes the torn-tail rule exact:

    Scanning stops at the first record that does not decode. If a sound head starts at any
    later offset, something was appended after the bad record, so the damage is inside the
    chunk. If none does, the bytes from the bad record on are what a crash during the last
    append leaves behind: a torn tail, which may be cut off.
"""

import enum
import struct
from dataclasses import dataclass

import xxhash
import zstandard

from geryon.chunkfs.errors import ChunkCorrupt, RecordError
from geryon.chunkfs.paths import MAX_PATH, is_canonical

CHUNK_MAGIC = b"\x89GCHUNK\n"
VERSION = 1
# magic, version, flags, reserved, capacity, log id, header checksum: little-endian.
CHUNK_HEADER = struct.Struct("<8sHHIQ16sQ")
HEADER_SIZE = CHUNK_HEADER.size  # 48

RECORD_MAGIC = b"GRec"
# magic, kind, flags, path length, mode, body length, size, mtime (ns), body sum, head sum.
RECORD_HEAD = struct.Struct("<4sBBHIIQqQQ")
HEAD_SIZE = RECORD_HEAD.size  # 48
_HEAD_SUMMED = HEAD_SIZE - 8  # the head sum covers every head byte before itself

MIN_CAPACITY = 4096
MAX_CAPACITY = 2**32  # body lengths are 32-bit
DEFAULT_CAPACITY = 64 * 2**20

ZSTD = 0x01  # flag: a file record's body is one zstd frame, not the data itself
MAX_MODE = 0o7777


class Kind(enum.IntEnum):
    """What a record does to the tree."""

    FILE = 1  # path now holds this data (replacing any file there)
    DIR = 2  # path is a new, empty directory
    REMOVE = 3  # path and everything beneath it are gone
    RENAME = 4  # path and everything beneath it move to the target path
    ATTR = 5  # path's mode and mtime are now these
    BEGIN = 6  # the records up to the next COMMIT count together or not at all
    COMMIT = 7


@dataclass(frozen=True)
class _Rule:
    path: bool = False  # must name a path (else must not)
    meta: bool = False  # may carry mode and mtime
    data: bool = False  # body is file data; may be compressed
    target: bool = False  # body is a path


# What each kind of record may carry; anything else in a record is damage.
RULES = {
    Kind.FILE: _Rule(path=True, meta=True, data=True),
    Kind.DIR: _Rule(path=True, meta=True),
    Kind.ATTR: _Rule(path=True, meta=True),
    Kind.REMOVE: _Rule(path=True),
    Kind.RENAME: _Rule(path=True, target=True),
    Kind.BEGIN: _Rule(),
    Kind.COMMIT: _Rule(),
}


@dataclass(frozen=True)
class ChunkHeader:
    """The fixed header at the start of every chunk."""

    capacity: int  # the most bytes the file may ever hold, header included
    log_id: bytes  # 16 random bytes, new whenever a log is written from scratch
    version: int = VERSION


def encode_header(header):
    """Return the 48 header bytes for `header`."""
    fields = CHUNK_MAGIC, header.version, 0, 0, header.capacity, header.log_id
    unsummed = CHUNK_HEADER.pack(*fields, 0)[:-8]
    return unsummed + struct.pack("<Q", xxhash.xxh3_64_intdigest(unsummed))


def decode_header(buf):
    """Return the ChunkHeader at the start of `buf`; raise ChunkCorrupt saying what is wrong."""
    if len(buf) < HEADER_SIZE:
        raise ChunkCorrupt(f"not a chunk: the file is {len(buf)} bytes long, "
                           f"too short for a chunk's {HEADER_SIZE}-byte header")
    magic, version, flags, reserved, capacity, log_id, checksum = CHUNK_HEADER.unpack_from(buf)
    if magic != CHUNK_MAGIC:
        raise ChunkCorrupt("not a chunk: the file does not begin with a chunk's magic number")
    if xxhash.xxh3_64_intdigest(bytes(buf[:HEADER_SIZE - 8])) != checksum:
        raise ChunkCorrupt("the chunk's header fails its checksum")
    if version != VERSION:
        raise ChunkCorrupt(f"the chunk is in format version {version}; this geryon reads "
                           f"version {VERSION}: use a geryon that knows version {version}")
    if flags or reserved or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise ChunkCorrupt("the chunk's header holds values no geryon writes "
                           f"(flags {flags}, reserved {reserved}, capacity {capacity})")
    return ChunkHeader(capacity, log_id, version)


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record: what it does, and where its body lies (not the body itself)."""

    offset: int  # where the record's head starts in the chunk file
    kind: Kind
    path: str = ""
    mode: int = 0
    mtime_ns: int = 0
    size: int = 0  # a file's length before compression
    flags: int = 0
    target: str = ""  # a rename's new path
    body_len: int = 0
    length: int = HEAD_SIZE  # of the whole record: head, path and body

    @property
    def end(self):
        return self.offset + self.length

    @property
    def body_offset(self):
        return self.end - self.body_len


def encode(offset, kind, path="", *, mode=0, mtime_ns=0, size=0, flags=0, body=b""):
    """Return the bytes of a record to be written at `offset` in a chunk.

    For a FILE record `body` is what pack() returned; for a RENAME, the new path's UTF-8.
    Raises RecordError if the fields break RULES, so a bad record is never written.
    """
    raw_path = path.encode("utf-8")
    _check_fields(offset, kind, len(raw_path), mode, mtime_ns, size, flags, len(body))
    body_sum = xxhash.xxh3_64()
    body_sum.update(raw_path)
    body_sum.update(body)
    head = RECORD_HEAD.pack(RECORD_MAGIC, kind, flags, len(raw_path), mode, len(body), size,
                            mtime_ns, body_sum.intdigest(), 0)[:_HEAD_SUMMED]
    head_sum = xxhash.xxh3_64_intdigest(head, seed=offset)
    return b"".join((head, struct.pack("<Q", head_sum), raw_path, body))


def decode(buf, offset, base=0, capacity=MAX_CAPACITY):
    """Return the Record whose head is at file offset `offset`; `buf[0]` is at offset `base`.

    Checks everything a record promises (magic, both sums, the rules for its kind, canonical
    paths, a file no larger than a chunk of `capacity` bytes can hold) and raises RecordError
    naming the first promise broken. The body is checked but not copied: read it from
    Record.body_offset.
    """
    view = memoryview(buf)
    at = offset - base
    if len(view) - at < HEAD_SIZE:
        raise RecordError(offset, f"is cut short: its head needs {HEAD_SIZE} bytes "
                                  f"and {len(view) - at} remain", short=True)
    if not _head_is_sound(view, at, offset):
        if bytes(view[at:at + 4]) != RECORD_MAGIC:
            raise RecordError(offset, "does not begin with a record's magic number")
        raise RecordError(offset, "fails its checksum")
    (_, kind, flags, path_len, mode, body_len, size, mtime_ns,
     body_sum, _) = RECORD_HEAD.unpack_from(view, at)
    if kind not in RULES:
        raise RecordError(offset, f"is of unknown kind {kind}", inside=True)
    kind = Kind(kind)
    _check_fields(offset, kind, path_len, mode, mtime_ns, size, flags, body_len, capacity)
    length = HEAD_SIZE + path_len + body_len
    if len(view) - at < length:
        raise RecordError(offset, f"is cut short: it is {length} bytes long "
                                  f"and {len(view) - at} remain", short=True)
    payload = view[at + HEAD_SIZE:at + length]
    if xxhash.xxh3_64_intdigest(payload) != body_sum:
        raise RecordError(offset, "fails its checksum")
    path = _decode_path(offset, payload[:path_len]) if path_len else ""
    target = _decode_path(offset, payload[path_len:]) if RULES[kind].target else ""
    return Record(offset, kind, path, mode, mtime_ns, size, flags, target, body_len, length)


def _head_is_sound(view, at, offset):
    head = view[at:at + HEAD_SIZE]
    if len(head) < HEAD_SIZE or bytes(head[:4]) != RECORD_MAGIC:
        return False
    (head_sum,) = struct.unpack_from("<Q", head, _HEAD_SUMMED)
    return xxhash.xxh3_64_intdigest(head[:_HEAD_SUMMED], seed=offset) == head_sum


def _check_fields(offset, kind, path_len, mode, mtime_ns, size, flags, body_len,
                  capacity=MAX_CAPACITY):
    rule = RULES[kind]
    name = kind.name.lower()
    wrong = None
    if rule.path != (path_len > 0):
        wrong = f"path length {path_len}"
    elif mode > MAX_MODE or (mode and not rule.meta):
        wrong = f"mode {mode:o}"
    elif mtime_ns and not rule.meta:
        wrong = f"mtime {mtime_ns}"
    elif flags & ~ZSTD or (flags and not rule.data):
        wrong = f"flags {flags:#x}"
    elif size > capacity - HEADER_SIZE:
        wrong = f"size {size}, more than a chunk of {capacity} bytes can hold"
    elif size and not rule.data:
        wrong = f"size {size}"
    elif rule.data and not flags & ZSTD and size != body_len:
        wrong = f"size {size} but {body_len} bytes of uncompressed data"
    elif rule.target and not 0 < body_len <= MAX_PATH:
        wrong = f"a target path {body_len} bytes long"
    elif body_len > MAX_CAPACITY or (body_len and not (rule.data or rule.target)):
        wrong = f"a body {body_len} bytes long"
    if wrong:
        raise RecordError(offset, f"is a {name} record with {wrong}, which is not allowed",
                          inside=True)


def _decode_path(offset, raw):
    try:
        path = str(raw, "utf-8")
    except UnicodeDecodeError:
        raise RecordError(offset, "holds a path that is not UTF-8", inside=True) from None
    if not is_canonical(path):
        raise RecordError(offset, f"holds the path {path!r}, which is not a canonical path",
                          inside=True)
    return path


@dataclass(frozen=True)
class Damage:
    """The first record a scan could not decode, and whether it can be a torn tail."""

    offset: int
    reason: str
    next_sound: int | None = None  # a later sound head, if any: then the damage is inside

    @property
    def inside(self):
        return self.next_sound is not None

    def __str__(self):
        return f"record at offset {self.offset} {self.reason}"


@dataclass(frozen=True)
class Scan:
    """What a scan of a chunk's records found."""

    records: list
    end: int  # just past the last sound record
    damage: Damage | None


def scan(buf, start=HEADER_SIZE, capacity=MAX_CAPACITY):
    """Decode the records of a whole chunk of `capacity` bytes held in `buf` (bytes), from
    `start` to the end."""
    records = []
    offset = start
    while offset < len(buf):
        try:
            record = decode(buf, offset, capacity=capacity)
        except RecordError as err:
            after = offset if err.inside else _next_sound(buf, offset)
            return Scan(records, offset, Damage(offset, err.reason, after))
        records.append(record)
        offset = record.end
    return Scan(records, offset, None)


def _next_sound(buf, offset):
    view = memoryview(buf)
    at = buf.find(RECORD_MAGIC, offset + 1)
    while at != -1:
        if _head_is_sound(view, at, at):
            return at
        at = buf.find(RECORD_MAGIC, at + 1)
    return None


def pack(data, compressor):
    """Return (flags, body) for a FILE record holding `data`: zstd-compressed if that is smaller."""
    if data:
        packed = compressor.compress(data)
        if len(packed) < len(data):
            return ZSTD, packed
    return 0, bytes(data)


# How much check_data decompresses at a time: what it holds, whatever a record's size.
_PIECE = 1 << 20


def unpack(record, body, decompressor):
    """Return the data of a FILE record from its `body`; raise RecordError if it is not sound.

    Never makes more than record.size bytes, which decode() has held to the chunk's
    capacity: zstandard's one-shot decompress() makes exactly the size the frame header
    states (ignoring max_output_size), so that size must be the record's before it runs.
    """
    if not record.flags & ZSTD:
        data = bytes(body)
    else:
        _check_frame(record, body)
        try:
            data = decompressor.decompress(body)
        except zstandard.ZstdError as err:
            raise RecordError(record.offset, f"holds data that does not decompress ({err})")
    if len(data) != record.size:
        raise RecordError(record.offset, f"holds {len(data)} bytes of data but says it "
                                         f"holds {record.size}")
    return data


def check_data(record, body, decompressor):
    """Raise RecordError unless a FILE record's `body` decompresses to exactly record.size
    bytes; holds at most a megabyte of the data at a time, and never goes past the size."""
    if not record.flags & ZSTD:
        return  # decode() has checked that the size is the body's length
    _check_frame(record, body)
    made = 0
    try:
        reader = decompressor.stream_reader(body)
        while piece := reader.read(min(_PIECE, record.size - made) or 1):
            made += len(piece)
            if made > record.size:
                raise RecordError(record.offset, "holds data that decompresses to more than "
                                                 f"the {record.size} bytes it says it holds")
    except zstandard.ZstdError as err:
        raise RecordError(record.offset, f"holds data that does not decompress ({err})")
    if made != record.size:
        raise RecordError(record.offset, f"holds {made} bytes of data but says it "
                                         f"holds {record.size}")


def _check_frame(record, body):
    try:
        stated = zstandard.frame_content_size(body)
    except zstandard.ZstdError as err:
        raise RecordError(record.offset, f"holds data that is not a zstd frame ({err})")
    if stated != record.size:
        raise RecordError(record.offset, "holds a zstd frame whose size is not the "
                                         "record's size")
