"""The chunk format and library: records byte by byte, the tree against a plain model, torn
tails cut at every offset, garbage, full disks, path escapes, compaction, tar streams."""

import errno
import io
import os
import random
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geryon.chunkfs import (Chunk, ChunkCorrupt, ChunkError, ChunkFull, ChunkPathError,
                            RecordError, export_tar, import_tar, normalise)
from geryon.chunkfs.record import (HEAD_SIZE, HEADER_SIZE, ChunkHeader, Kind, decode,
                                   decode_header, encode, encode_header, scan)

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture
def disk_path(tmp_path):
    return str(tmp_path / "chunk0")


# Records, sans I/O.

names = st.sampled_from(["a", "b"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
datas = st.one_of(st.binary(max_size=64), st.integers(0, 300).map(lambda n: b"x" * n))

records = st.one_of(
    st.builds(lambda p, m, t: (Kind.DIR, p, {"mode": m, "mtime_ns": t}),
              paths, st.integers(0, 0o7777), st.integers(-2**63, 2**63 - 1)),
    st.builds(lambda p: (Kind.REMOVE, p, {}), paths),
    st.builds(lambda p, q: (Kind.RENAME, p, {"body": q.encode()}), paths, paths),
    st.builds(lambda p, d: (Kind.FILE, p, {"size": len(d), "body": d, "mode": 0o644}),
              paths, st.binary(max_size=100)),
    st.just((Kind.BEGIN, "", {})),
)


@FAST
@given(records, st.integers(HEADER_SIZE, 2**40))
def test_record_round_trip_and_every_truncation_refused(record, offset):
    kind, path, fields = record
    raw = encode(offset, kind, path, **fields)
    decoded = decode(raw + b"trailing garbage", offset, base=offset)
    assert (decoded.kind, decoded.path, decoded.length) == (kind, path, len(raw))
    assert decoded.mode == fields.get("mode", 0)
    if kind is Kind.RENAME:
        assert decoded.target == fields["body"].decode()
    for cut in range(len(raw)):
        with pytest.raises(RecordError, match="is cut short"):
            decode(raw[:cut], offset, base=offset)


def test_a_record_is_sound_only_at_its_own_offset():
    raw = encode(100, Kind.DIR, "a", mode=0o755)
    assert decode(raw, 100, base=100).path == "a"
    with pytest.raises(RecordError, match="record at offset 101 fails its checksum"):
        decode(raw, 101, base=101)


@FAST
@given(st.binary(max_size=200), st.integers(0, 10**6))
def test_garbage_never_decodes_as_a_record(garbage, offset):
    with pytest.raises(RecordError):
        decode(garbage, offset, base=offset)
    with pytest.raises(ChunkCorrupt):
        decode_header(garbage)


@FAST
@given(records, st.integers(0, HEAD_SIZE + 20), st.integers(1, 255))
def test_every_flipped_byte_is_caught(record, at, xor):
    kind, path, fields = record
    raw = bytearray(encode(HEADER_SIZE, kind, path, **fields))
    assume(at < len(raw))
    raw[at] ^= xor
    with pytest.raises(RecordError):
        decode(bytes(raw), HEADER_SIZE, base=HEADER_SIZE)


def test_header_round_trip_and_version():
    header = ChunkHeader(2**20, bytes(range(16)))
    raw = encode_header(header)
    assert len(raw) == HEADER_SIZE and decode_header(raw) == header
    with pytest.raises(ChunkCorrupt, match="format version 2; this geryon reads version 1"):
        decode_header(encode_header(ChunkHeader(2**20, bytes(16), version=2)))


# Paths.

@pytest.mark.parametrize("path,why", [
    ("/etc/passwd", "is absolute"),
    ("../x", "'..' component"),
    ("a/../../x", "'..' component"),
    ("a/..", "'..' component"),
    ("a//b", "empty component"),
    ("a\0b", "NUL byte"),
    ("x" * 256, "longer than 255"),
])
def test_paths_that_escape_are_refused(disk_path, path, why):
    with Chunk.create(disk_path, 2**16) as disk:
        for attempt in (lambda: disk.write(path, b"x"), lambda: disk.mkdir(path),
                        lambda: disk.read(path), lambda: disk.rename("a", path)):
            with pytest.raises(ChunkPathError, match=why) as caught:
                attempt()
            assert str(caught.value).startswith(f"chunk {disk_path}: path ")
        assert disk.walk() == []


@FAST
@given(st.text(alphabet="ab./\0", max_size=12))
def test_normalised_paths_stay_inside(path):
    try:
        canonical = normalise(path)
    except ChunkPathError:
        return
    parts = canonical.split("/")
    assert not canonical.startswith("/") and ".." not in parts and "." not in parts
    assert canonical == "" or "" not in parts
    assert normalise(canonical) == canonical


# The tree against a plain dict: path -> None (a directory) or bytes (a file).

def model_apply(model, op):
    """Apply op to the model; return False where the chunk must refuse it."""
    kind, *args = op

    def exists(path):
        return path == "" or path in model

    def parent(path):
        return path.rpartition("/")[0]

    def is_dir(path):
        return path == "" or (path in model and model[path] is None)

    def under(path):
        return [p for p in model if p.startswith(path + "/")]

    if kind in ("compact", "reopen"):
        return True
    if kind == "put":
        path, data = args
        ancestors = []
        directory = parent(path)
        while directory and directory not in model:
            ancestors.append(directory)
            directory = parent(directory)
        if not is_dir(directory) or is_dir(path):
            return False
        model.update(dict.fromkeys(ancestors))
        model[path] = data
    elif kind == "mkdir":
        (path,) = args
        if exists(path) or not is_dir(parent(path)):
            return False
        model[path] = None
    elif kind == "rm":
        path, recursive = args
        if not exists(path) or (not recursive and under(path)):
            return False
        for p in [path, *under(path)]:
            del model[p]
    elif kind == "rename":
        old, new = args
        if not exists(old):
            return False
        if old == new:
            return True
        if new.startswith(old + "/") or not is_dir(parent(new)):
            return False
        if exists(new) and (is_dir(old) != is_dir(new) or under(new)):
            return False
        model.pop(new, None)
        for p in [old, *under(old)]:
            model[new + p[len(old):]] = model.pop(p)
    return True


def chunk_apply(disk, op):
    kind, *args = op
    if kind == "put":
        disk.write(*args)
    elif kind == "mkdir":
        disk.mkdir(*args)
    elif kind == "rm":
        disk.remove(*args)
    elif kind == "rename":
        disk.rename(*args)


def contents(disk):
    return {e.path: None if e.is_dir else disk.read(e.path) for e in disk.walk()}


@st.composite
def op_lists(draw, min_size=0, max_size=25, upkeep=True):
    """Lists of operations that often name paths that exist (the model runs as they are drawn)."""
    model, ops = {}, []
    for _ in range(draw(st.integers(min_size, max_size))):
        some_path = st.one_of(paths, st.sampled_from(sorted(model))) if model else paths
        choices = [st.tuples(st.just("put"), some_path, datas),
                   st.tuples(st.just("mkdir"), some_path),
                   st.tuples(st.just("rm"), some_path, st.booleans()),
                   st.tuples(st.just("rename"), some_path, some_path)]
        if upkeep:
            choices += [st.just(("compact",)), st.just(("reopen",))]
        op = draw(st.one_of(choices))
        model_apply(model, op)
        ops.append(op)
    return ops


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op_lists())
def test_operations_agree_with_a_dict(tmp_path, ops):
    path = str(tmp_path / "model")
    if os.path.exists(path):
        os.unlink(path)
    model = {}
    disk = Chunk.create(path, 2**20)
    try:
        for op in ops:
            if op[0] == "compact":
                disk.compact()
                assert disk.used == disk.live
            elif op[0] == "reopen":
                disk.close()
                disk = Chunk.open(path)
                assert disk.repair is None
            else:
                before = disk.used
                allowed = model_apply(model, op)
                try:
                    chunk_apply(disk, op)
                except ChunkPathError:
                    assert not allowed, op
                    assert disk.used == before  # a refused change writes nothing
                else:
                    assert allowed, op
            assert contents(disk) == model
        assert disk.fsck().ok
    finally:
        disk.close()
    with Chunk.open(path, readonly=True) as disk:
        assert contents(disk) == model


def build(path, ops):
    """Apply ops to a new chunk; return [(bytes used, model)] before and after each."""
    model, states = {}, []
    with Chunk.create(path, 2**20) as disk:
        states.append((disk.used, {}))
        for op in ops:
            if model_apply(model, op):
                chunk_apply(disk, op)
                states.append((disk.used, dict(model)))
    return states


# The garbage comes from one drawn seed, not from hypothesis's random source: drawing every
# byte of every tail from it used up its entropy budget about one run in five (the
# data_too_large health check). tmp_path is shared by the examples, which is why the
# function-scoped fixture check is off: each example clears what it uses first.
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op_lists(min_size=1, max_size=12, upkeep=False),
       st.sampled_from(["cut", "zeros", "garbage"]), st.integers(0, 2**32 - 1))
def test_a_torn_tail_reopens_to_a_prefix_of_the_operations(tmp_path, ops, tail, seed):
    source, torn = str(tmp_path / "whole"), str(tmp_path / "torn")
    for file in (source, torn):
        if os.path.exists(file):
            os.unlink(file)
    states = build(source, ops)
    whole = open(source, "rb").read()
    garbage = random.Random(seed).randbytes(len(whole))
    start = states[max(0, len(states) - 4)][0]  # every offset inside the last three changes
    for cut in range(start, len(whole) + 1):
        rest = len(whole) - cut
        filler = {"cut": b"", "zeros": bytes(rest), "garbage": garbage[cut:]}[tail]
        if filler and filler == whole[cut:]:
            continue  # the filler is the very bytes it replaces: nothing is torn
        with open(torn, "wb") as f:
            f.write(whole[:cut] + filler)
        # Filler bytes that happen to equal the ones they replace tear nothing: the chunk
        # is torn where it first differs (a zero byte over a zero byte of data, say).
        same = next((i for i, (a, b) in enumerate(zip(filler, whole[cut:])) if a != b),
                    len(filler))
        torn_at = cut + same if filler else cut
        used, model = max((s for s in states if s[0] <= torn_at), key=lambda s: s[0])
        with Chunk.open(torn) as disk:
            assert contents(disk) == model, cut
            assert disk.used == used == os.path.getsize(torn)
            assert (disk.repair is None) == (used == cut and not filler)


def documented_reader():
    """The stand-alone reader in docs/chunk-format.md, so the page cannot drift from the code."""
    text = (Path(__file__).parent.parent / "docs" / "chunk-format.md").read_text()
    namespace = {}
    exec(text.split("```python\n", 1)[1].split("```", 1)[0], namespace)
    return namespace["read_chunk"]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op_lists(max_size=15, upkeep=False), st.booleans())
def test_the_documented_reader_reads_what_we_write(tmp_path, ops, compacted):
    path = str(tmp_path / "documented")
    if os.path.exists(path):
        os.unlink(path)
    model = build(path, ops)[-1][1]
    if compacted:
        with Chunk.open(path) as disk:
            disk.compact()
    tree = documented_reader()(open(path, "rb").read())
    assert {p: v for p, v in tree.items() if p} == model


def test_torn_tail_is_cut_and_reported(disk_path):
    with Chunk.create(disk_path, 2**20) as disk:
        disk.write("a", b"first")
        end = disk.used
        disk.write("b", b"second")
    whole = open(disk_path, "rb").read()
    with open(disk_path, "r+b") as f:
        f.truncate(len(whole) - 3)
    with Chunk.open(disk_path, readonly=True) as disk:
        assert disk.repair == (f"chunk {disk_path}: record at offset {end} is cut short: it is "
                               f"{len(whole) - end} bytes long and {len(whole) - end - 3} "
                               f"remain; the chunk is open read-only, so it is read as if cut "
                               f"there ({end} B kept)")
        assert os.path.getsize(disk_path) == len(whole) - 3
    with Chunk.open(disk_path) as disk:
        assert disk.repair == (f"chunk {disk_path}: record at offset {end} is cut short: it is "
                               f"{len(whole) - end} bytes long and {len(whole) - end - 3} "
                               f"remain; the chunk was cut there ({end} B kept)")
        assert [e.path for e in disk.walk()] == ["a"] and disk.read("a") == b"first"
    assert os.path.getsize(disk_path) == end
    with open(disk_path, "ab") as f:  # the tail written in full, but its data never was
        f.write(whole[end:-6] + bytes(6))
    with Chunk.open(disk_path) as disk:
        assert disk.repair == (f"chunk {disk_path}: record at offset {end} fails its "
                               f"checksum; the chunk was cut there ({end} B kept)")


def test_damage_inside_is_refused_and_salvage_cuts_it(disk_path):
    with Chunk.create(disk_path, 2**20) as disk:
        disk.write("a", b"first")
        damaged = disk.used
        disk.write("b", b"second")
        after = disk.used
        disk.write("c", b"third")
    with open(disk_path, "r+b") as f:
        f.seek(damaged + HEAD_SIZE + 1)
        f.write(b"!")
    with pytest.raises(ChunkCorrupt) as caught:
        Chunk.open(disk_path)
    assert str(caught.value) == (
        f"chunk {disk_path}: record at offset {damaged} fails its checksum, and a sound "
        f"record follows at offset {after}; the chunk is damaged inside, not torn at its end. "
        f"`geryon chunk fsck --repair {disk_path}` cuts it at offset {damaged}, losing what "
        "follows; or copy the chunk from a replica")
    with Chunk.open(disk_path, salvage=True) as disk:
        assert [e.path for e in disk.walk()] == ["a"] and disk.repair
    with Chunk.open(disk_path) as disk:
        assert disk.repair is None


@FAST
@given(st.binary(max_size=400))
def test_garbage_chunks_give_only_chunk_errors(tmp_path, garbage):
    path = str(tmp_path / "garbage")
    with open(path, "wb") as f:
        f.write(garbage)
    with pytest.raises(ChunkCorrupt):
        Chunk.open(path)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2000), st.binary(min_size=1, max_size=8)),
                min_size=1, max_size=3))
def test_random_bytes_anywhere_give_only_chunk_errors(tmp_path, patches):
    path = str(tmp_path / "patched")
    if os.path.exists(path):
        os.unlink(path)
    build(path, [("put", "a/b", b"x" * 300), ("mkdir", "c"), ("put", "c/d", b"data"),
                 ("rename", "a", "c/a"), ("put", "e", bytes(range(100))), ("rm", "e", False)])
    raw = bytearray(open(path, "rb").read())
    for at, data in patches:
        raw[at % len(raw):at % len(raw) + len(data)] = data
    with open(path, "wb") as f:
        f.write(raw)
    try:
        disk = Chunk.open(path)
    except ChunkError:
        return
    with disk:
        for entry in disk.walk():
            if not entry.is_dir:
                try:
                    disk.read(entry.path)
                except ChunkError:
                    pass
        disk.fsck()


# Full disks.

def test_a_full_disk_refuses_and_stays_as_it_was(disk_path):
    data = os.urandom(1500)  # incompressible: stored as it is
    with Chunk.create(disk_path, 4096) as disk:
        disk.write("one", data)
        disk.write("two", data)
        before = open(disk_path, "rb").read()
        with pytest.raises(ChunkFull) as caught:
            disk.write("dir/three", data)
        needed = HEAD_SIZE * 4 + len("dir") + len("dir/three") + len(data)
        assert str(caught.value) == (
            f"chunk {disk_path}: no room to write 'dir/three': it needs {needed} bytes and "
            f"{disk.free} bytes are free; compact the chunk to reclaim what removed and "
            "replaced files hold, or write to another disk")
        assert caught.value.errno == errno.ENOSPC and caught.value.needed == needed
        assert open(disk_path, "rb").read() == before
        assert not disk.exists("dir")
        with pytest.raises(ChunkFull, match="more than a chunk of 4096 bytes can hold"):
            disk.write("huge", bytes(5000))
        disk.remove("one")
        disk.compact()
        disk.write("dir/three", data)
    with Chunk.open(disk_path) as disk:
        assert sorted(contents(disk)) == ["dir", "dir/three", "two"]


def test_an_import_that_does_not_fit_changes_nothing(disk_path):
    with Chunk.create(disk_path, 4096) as disk:
        disk.write("keep", b"kept")
        before = open(disk_path, "rb").read()
        with pytest.raises(ChunkFull):
            import_tar(disk, tar_of({"a": os.urandom(2000), "b": os.urandom(2000)}))
        assert open(disk_path, "rb").read() == before
        assert contents(disk) == {"keep": b"kept"}


# Groups, compaction, locking.

def test_a_group_without_its_commit_is_cut(disk_path):
    with Chunk.create(disk_path, 2**20) as disk:
        disk.write("a", b"1")
        start = disk.used
        with disk.atomic():
            disk.write("b", b"2")
            disk.write("c", b"3")
        whole = open(disk_path, "rb").read()
    records = scan(whole).records
    assert [r.kind for r in records] == [Kind.FILE, Kind.BEGIN, Kind.FILE, Kind.FILE,
                                         Kind.COMMIT]
    with open(disk_path, "wb") as f:
        f.write(whole[:records[-1].offset])
    with Chunk.open(disk_path) as disk:
        assert contents(disk) == {"a": b"1"}
        assert f"record at offset {start} begins a group of records that was never " \
               "committed; the chunk was cut there" in disk.repair


def test_an_error_inside_atomic_undoes_the_group(disk_path):
    with Chunk.create(disk_path, 2**20) as disk:
        disk.write("a", b"1")
        with pytest.raises(ChunkPathError), disk.atomic():
            disk.write("b", b"2")
            disk.remove("missing")
        assert contents(disk) == {"a": b"1"}
    with Chunk.open(disk_path) as disk:
        assert contents(disk) == {"a": b"1"} and disk.repair is None


def test_compaction_swaps_in_a_new_log(disk_path):
    with Chunk.create(disk_path, 2**20) as disk:
        for i in range(5):
            disk.write("f", b"version %d" % i, mode=0o600, mtime=1000.5)
        disk.mkdir("d")
        old_id, used, live = disk.log_id, disk.used, disk.live
        assert disk.compact() == used - live
        assert disk.used == live and disk.log_id != old_id
        assert os.listdir(os.path.dirname(disk_path)) == ["chunk0"]
        disk.write("g", b"after")
    with Chunk.open(disk_path) as disk:
        assert contents(disk) == {"d": None, "f": b"version 4", "g": b"after"}
        entry = disk.stat("f")
        assert (entry.mode, entry.mtime, entry.size) == (0o600, 1000.5, 9)


def test_one_writer_at_a_time(disk_path):
    with Chunk.create(disk_path, 2**16) as disk:
        disk.write("a", b"1")
        with pytest.raises(ChunkError, match="another process has it open for writing"):
            Chunk.open(disk_path)
        with Chunk.open(disk_path, readonly=True) as reader:
            assert reader.read("a") == b"1"
            with pytest.raises(ChunkError, match="is open read-only"):
                reader.write("b", b"2")


def test_not_found_and_kind_errors_name_the_chunk_and_path(disk_path):
    with Chunk.create(disk_path, 2**16) as disk:
        disk.write("f", b"")
        cases = [(lambda: disk.stat("nope"), errno.ENOENT, "'nope' does not exist"),
                 (lambda: disk.read("."), errno.EISDIR, "'.' is a directory, not a file"),
                 (lambda: disk.listdir("f"), errno.ENOTDIR, "'f' is a file, not a directory"),
                 (lambda: disk.write("f/g", b""), errno.ENOTDIR,
                  "cannot make 'f/g': 'f' is a file, not a directory"),
                 (lambda: disk.mkdir("f"), errno.EEXIST,
                  "cannot make directory 'f': it already exists"),
                 (lambda: disk.remove(""), errno.EPERM, "the root directory cannot be")]
        for call, code, message in cases:
            with pytest.raises(ChunkPathError) as caught:
                call()
            assert str(caught.value).startswith(f"chunk {disk_path}: {message}")
            assert caught.value.errno == code
    with pytest.raises(ChunkError, match="no such file"):
        Chunk.open(disk_path + "x")
    with pytest.raises(ChunkError, match="the file already exists"):
        Chunk.create(disk_path)


# Tar streams.

def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_export_then_import_round_trips(tmp_path):
    with Chunk.create(tmp_path / "a", 2**20) as source:
        source.write("mail/1", b"From: a\n" * 100, mode=0o640, mtime=1234.25)
        source.mkdir("empty", mode=0o700)
        stream = io.BytesIO()
        assert export_tar(source, stream) == 3
        stream.seek(0)
        with Chunk.create(tmp_path / "b", 2**20) as copy:
            result = import_tar(copy, stream, "under")
            assert (result.files, result.dirs, result.skipped) == (1, 2, [])
            assert copy.read("under/mail/1") == source.read("mail/1")
            assert copy.stat("under/mail/1").mtime == 1234.25
            assert copy.stat("under/mail/1").mode == 0o640
            assert copy.stat("under/empty").mode == 0o700


def test_import_refuses_escapes_and_skips_links(disk_path):
    with Chunk.create(disk_path, 2**20) as disk:
        with pytest.raises(ChunkPathError, match="'..' component"):
            import_tar(disk, tar_of({"ok": b"1", "../evil": b"2"}))
        assert disk.walk() == []
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.addfile(tarfile.TarInfo("f"), io.BytesIO())
            for name, kind in (("hard", tarfile.LNKTYPE), ("soft", tarfile.SYMTYPE)):
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, "f"
                tar.addfile(info)
        buf.seek(0)
        result = import_tar(disk, buf)
        assert result.skipped == ["soft (a symbolic link)"]
        assert sorted(contents(disk)) == ["f", "hard"]
        with pytest.raises(ChunkError, match="cannot import the tar"):
            import_tar(disk, io.BytesIO(b"not a tar" * 100))


def test_a_sound_record_that_breaks_the_rules_is_damage(disk_path):
    with Chunk.create(disk_path, 2**16) as disk:
        disk.write("a", b"1")
        end = disk.used
    with open(disk_path, "ab") as f:
        f.write(encode(end, Kind.REMOVE, "nope"))
    with pytest.raises(ChunkCorrupt) as caught:
        Chunk.open(disk_path)
    assert str(caught.value) == (
        f"chunk {disk_path}: record at offset {end} breaks the tree's rules: cannot remove "
        "'nope': it does not exist; the chunk is damaged inside, not torn at its end. "
        f"`geryon chunk fsck --repair {disk_path}` cuts it at offset {end}, losing what "
        "follows; or copy the chunk from a replica")


# Limits: no record may state more data than its chunk can hold, and no read or check
# decompresses more than a record states.

def test_a_file_record_larger_than_its_chunk_is_damage_not_a_torn_tail(disk_path):
    from crafted import lying_frame, raw_record
    with Chunk.create(disk_path, 2**20) as disk:
        disk.write("a", b"1")
        end = disk.used
    with open(disk_path, "ab") as f:  # sound sums, at the end, where a torn tail would be
        f.write(raw_record(end, "big", 2**20, lying_frame(2**20, 2**20)))
    with pytest.raises(ChunkCorrupt) as caught:
        Chunk.open(disk_path)
    assert str(caught.value).startswith(
        f"chunk {disk_path}: record at offset {end} is a file record with size 1048576, more "
        "than a chunk of 1048576 bytes can hold, which is not allowed; the chunk is damaged "
        "inside, not torn at its end.")
    assert os.path.getsize(disk_path) > end  # nothing was cut


@pytest.mark.parametrize("stated,made,why", [
    (2**19, 2**18, "holds data that does not decompress"),  # the frame ends short
    (2**18, 2**19, "holds data that does not decompress"),  # the frame makes more
])
def test_reads_and_checks_refuse_a_frame_that_lies_about_its_size(stated, made, why):
    from crafted import lying_frame
    from geryon.chunkfs.record import ZSTD, Record, check_data, unpack
    import zstandard
    record = Record(HEADER_SIZE, Kind.FILE, "f", size=stated, flags=ZSTD)
    for call in (unpack, check_data):
        with pytest.raises(RecordError, match=f"record at offset 48 {why}"):
            call(record, lying_frame(stated, made), zstandard.ZstdDecompressor())
    with pytest.raises(RecordError, match="a zstd frame whose size is not the record's size"):
        check_data(Record(HEADER_SIZE, Kind.FILE, "f", size=stated - 1, flags=ZSTD),
                   lying_frame(stated, made), zstandard.ZstdDecompressor())
    with pytest.raises(RecordError, match="holds data that is not a zstd frame"):
        check_data(record, b"not zstd", zstandard.ZstdDecompressor())


def test_checking_a_file_holds_a_megabyte_of_it_at_a_time():
    import tracemalloc
    import zstandard
    from geryon.chunkfs.record import ZSTD, Record, check_data
    size = 48 * 2**20
    body = zstandard.ZstdCompressor().compress(bytes(size))  # 48 MiB in a few kilobytes
    record = Record(HEADER_SIZE, Kind.FILE, "zeros", size=size, flags=ZSTD)
    tracemalloc.start()
    try:
        check_data(record, body, zstandard.ZstdDecompressor())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 2**20


def test_an_image_must_be_whole_and_says_what_is_wrong_where(disk_path):
    with Chunk.create(disk_path, 2**20) as disk:
        disk.write("a", b"first")
        last = disk.used
        disk.write("b", os.urandom(100))
    whole = open(disk_path, "rb").read()
    damaged = whole[:-1] + bytes([whole[-1] ^ 1])
    for data, reason in [
            (damaged, f"record at offset {last} fails its checksum"),
            (whole[:-3], f"record at offset {last} is cut short: it is {len(whole) - last} "
                         f"bytes long and {len(whole) - last - 3} remain")]:
        with open(disk_path, "wb") as f:
            f.write(data)
        with pytest.raises(ChunkCorrupt) as caught:
            Chunk.open(disk_path, whole=True)
        assert str(caught.value) == (
            f"chunk {disk_path}: {reason}; an image must be whole, with nothing cut off or "
            "damaged: send it again, or check its source with `geryon chunk fsck`")
        assert open(disk_path, "rb").read() == data  # a refused image is not cut


# The format is a pure core: it loads nothing of the network or the cluster.

def loaded_by(*modules):
    import subprocess
    import sys
    code = (f"import sys; import {', '.join(modules)}; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('asyncio', 'asyncssh') or m.startswith(('geryon.ns', 'geryon.registry', "
            "'geryon.ndb', 'geryon.disks')))))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()


def test_record_and_tree_load_without_asyncio_or_the_cluster():
    assert loaded_by("geryon.chunkfs.record", "geryon.chunkfs.tree") == []
    assert loaded_by("geryon.chunkfs.chunk", "geryon.chunkfs.image", "geryon.chunkfs.fsck",
                     "geryon.chunkfs.tarstream") == []


def test_the_served_tree_loads_the_tree_api_but_no_ssh_client_registry_or_ndb():
    loaded = loaded_by("geryon.chunkfs.disk")
    assert "geryon.ns.tree" in loaded
    assert not [m for m in loaded if m.split(".")[0] == "asyncssh" or m.startswith(
        ("geryon.ns.client", "geryon.registry", "geryon.ndb", "geryon.disks"))], loaded
