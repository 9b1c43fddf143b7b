"""chunkfs.extract: a chunk's files written out by shares, each body decompressed to exactly
its stated size."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkCorrupt, ChunkError
from geryon.chunkfs.extract import extract, plan


def tree_of(top):
    found = {}
    for dirpath, _, files in os.walk(top):
        for name in files:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, top)] = open(path, "rb").read()
    return found


@settings(max_examples=20, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}", fullmatch=True),
                       st.binary(max_size=3000), max_size=25), st.integers(1, 4))
def test_shares_together_write_exactly_the_chunks_files(tmp_path_factory, files, parts):
    tmp = tmp_path_factory.mktemp("x")
    chunk = Chunk.create(tmp / "c", 1 << 20)
    for path, data in files.items():
        try:
            chunk.write(path, data)
        except ChunkError:
            continue  # a path that is a directory already, say: the chunk said no
    names = [e.path for e in chunk.walk() if not e.is_dir]
    if names:
        chunk.remove(names[0])  # a removed file is not written out
    kept = {e.path: chunk.read(e.path) for e in chunk.walk() if not e.is_dir}
    chunk.close()
    listing = plan(tmp / "c")
    out = tmp / "out"
    out.mkdir()
    written = sum(extract(tmp / "c", out, listing, part, parts) for part in range(parts))
    assert tree_of(out) == kept
    assert written == sum(len(d) for d in kept.values())


def test_one_process_per_share_writes_the_same(tmp_path):
    from geryon.chunkfs.extract import extract_share
    chunk = Chunk.create(tmp_path / "c", 1 << 20)
    for i in range(30):
        chunk.write(f"d{i % 3}/f{i}", bytes([i]) * (i * 37))
    want = {e.path: chunk.read(e.path) for e in chunk.walk() if not e.is_dir}
    chunk.close()
    (tmp_path / "out").mkdir()
    assert sum(extract_share(tmp_path / "c", tmp_path / "out", part, 3)
               for part in range(3)) == sum(len(d) for d in want.values())
    assert tree_of(tmp_path / "out") == want


def test_a_body_damaged_after_planning_is_refused(tmp_path):
    chunk = Chunk.create(tmp_path / "c", 1 << 20)
    chunk.write("a/b", b"x" * 5000)
    chunk.close()
    listing = plan(tmp_path / "c")
    placed = listing.files[0]
    with open(tmp_path / "c", "r+b") as f:
        f.seek(placed.offset + placed.length - 10)
        f.write(b"garbage!!!")
    (tmp_path / "out").mkdir()
    with pytest.raises(ChunkCorrupt, match="cannot read 'a/b'"):
        extract(tmp_path / "c", tmp_path / "out", listing)
