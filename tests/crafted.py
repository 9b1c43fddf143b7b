"""Chunk bytes no geryon writes, for the tests that check they are refused: records that
claim more data than they hold, and zstd frames whose header lies about their size."""

import struct

import xxhash

from geryon.chunkfs.record import (HEADER_SIZE, RECORD_HEAD, RECORD_MAGIC, ZSTD, ChunkHeader,
                                   Kind, encode_header)

_RLE_BLOCK = 1 << 17  # the most one zstd block may make: 128 KiB


def lying_frame(stated: int, made: int) -> bytes:
    """A zstd frame whose header says it holds `stated` bytes and whose blocks make `made`
    (a multiple of 128 KiB): four bytes of RLE block for every 128 KiB it makes."""
    frame = [struct.pack("<IB", 0xFD2FB528, 0xE0), struct.pack("<Q", stated)]
    blocks = made // _RLE_BLOCK
    for i in range(blocks):
        last = i == blocks - 1
        frame.append((_RLE_BLOCK << 3 | 1 << 1 | last).to_bytes(3, "little") + b"x")
    return b"".join(frame)


def raw_record(offset: int, path: str, size: int, body: bytes, flags: int = ZSTD) -> bytes:
    """A FILE record with sound sums whatever its fields say (encode() would refuse it)."""
    raw_path = path.encode()
    head = RECORD_HEAD.pack(RECORD_MAGIC, Kind.FILE, flags, len(raw_path), 0o644, len(body),
                            size, 0, xxhash.xxh3_64_intdigest(raw_path + body), 0)[:-8]
    return head + struct.pack("<Q", xxhash.xxh3_64_intdigest(head, seed=offset)) \
        + raw_path + body


def image_of(capacity: int, files: list[tuple[str, int, bytes]]) -> bytes:
    """A chunk image of `capacity` holding the files (path, stated size, zstd body)."""
    out = bytearray(encode_header(ChunkHeader(capacity, bytes(16))))
    for path, size, body in files:
        out += raw_record(len(out), path, size, body)
    assert len(out) > HEADER_SIZE
    return bytes(out)


def bomb_image(capacity: int) -> bytes:
    """The attack of issue 6: a 262 KB image holding two files that each claim 4 GiB, and
    whose frames do make it (32,768 RLE blocks of 128 KiB: 128 KiB of bytes each)."""
    four_gib = 1 << 32
    frame = lying_frame(four_gib, four_gib)
    return image_of(capacity, [("a", four_gib, frame), ("b", four_gib, frame)])
