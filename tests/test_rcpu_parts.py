"""The parts of rcpu that need no cluster: block text, the exec request, the name space
script run for real, committing an overlay's upper layer, the disk cache, the turn."""

import asyncio
import os
import subprocess

import pytest
from hypothesis import given, strategies as st

from geryon.chunkfs.chunk import Chunk
from geryon.disks.errors import DiskError
from geryon.rcpu.block import BlockError, BlockRequest, normalise
from geryon.rcpu.cache import DiskCache
from geryon.rcpu.client import next_turn
from geryon.rcpu.commit import CommitError, commit
from geryon.rcpu.namespace import Namespace, Overlay
from geryon.rcpu.service import check_namespaces


@pytest.mark.parametrize("text", ["{ls /n/d0.mbox}", "<ls /n/d0.mbox>", "ls /n/d0.mbox",
                                  "  { ls /n/d0.mbox }  "])
def test_every_form_of_a_block_is_the_same_block(text):
    assert normalise(text) == "ls /n/d0.mbox"


def test_a_block_keeps_braces_inside_it():
    assert normalise("{for i in 1 2; do { echo $i; }; done}") == \
        "for i in 1 2; do { echo $i; }; done"


@pytest.mark.parametrize("text", ["", "{}", "<  >", "x" * 70000])
def test_empty_or_huge_blocks_are_refused(text):
    with pytest.raises(BlockError):
        normalise(text)


@given(st.lists(st.from_regex(r"d[0-9]{1,2}\.[a-z]{1,5}", fullmatch=True), unique=True,
                max_size=5), st.text(min_size=1).filter(lambda t: t.strip()))
def test_a_request_round_trips_through_its_command_line(disks, block):
    import shlex
    try:
        block = normalise(block)
    except BlockError:
        return
    request = BlockRequest(block, tuple(disks), "")
    words = shlex.split(request.command())
    assert words[0] == "block"
    parsed = BlockRequest.parse(words[1:])
    assert parsed.disks == request.disks and parsed.block == normalise(block)


@pytest.mark.parametrize("args, error", [
    (["d0.mbox"], "no block given"), (["--out"], "needs a disk"),
    (["--bogus", "--", "ls"], "unknown option"), (["d0.mbox", "d0.mbox", "--", "ls"], "twice"),
    (["--out", "d0.cpu", "d0.cpu", "--", "ls"], "never one of the inputs"),
])
def test_bad_requests_say_what_is_wrong(args, error):
    with pytest.raises(BlockError, match=error):
        BlockRequest.parse(args)


def test_a_bad_disk_name_is_refused():
    with pytest.raises(DiskError):
        BlockRequest.parse(["bad/name", "--", "ls"])


def run_block(namespace: Namespace, block: str):
    check_namespaces()  # fails loudly, saying what to enable, where name spaces are refused
    report_r, report_w = os.pipe()
    try:
        result = subprocess.run(namespace.unshare_argv(block, os.geteuid() != 0, report_w),
                                capture_output=True, pass_fds=(report_w,),
                                stdin=subprocess.DEVNULL, timeout=30)
    finally:
        os.close(report_w)
    with os.fdopen(report_r, "rb") as f:
        return result, f.read()


def test_a_block_sees_exactly_its_disks_and_writes_only_its_output(tmp_path):
    for d in ("src", "lower", "upper", "work"):
        (tmp_path / d).mkdir()
    (tmp_path / "src" / "f").write_text("in\n")
    (tmp_path / "lower" / "old").write_text("old\n")
    ns = Namespace({"d0.mbox": tmp_path / "src"},
                   ("d0.cpu", Overlay(tmp_path / "lower", tmp_path / "upper", tmp_path / "work")),
                   env={"cpudisk": "/n/d0.cpu"})
    result, report = run_block(ns, "ls /n; cat /n/d0.mbox/f; echo new > $cpudisk/new; "
                                   "rm $cpudisk/old; echo x > /n/d0.mbox/g; exit 3")
    assert result.stdout == b"d0.cpu\nd0.mbox\nin\n"
    assert b"Read-only file system" in result.stderr
    assert (result.returncode, report) == (3, b"exit 3")
    assert sorted(os.listdir(tmp_path / "upper")) == ["new", "old"]  # old: a whiteout
    assert (tmp_path / "lower" / "old").exists() and not (tmp_path / "src" / "g").exists()


@pytest.mark.parametrize("block, report", [("kill -9 $$", b"signal 9"),
                                           ("kill -TERM $$", b"signal 15"),
                                           ("exit 255", b"exit 255"), ("true", b"exit 0")])
def test_how_a_block_ended_is_reported_exactly(block, report):
    _, said = run_block(Namespace(), block)
    assert said == report


def test_what_a_block_leaves_running_is_killed_when_it_ends(tmp_path):
    marker = f"geryon-test-{os.getpid()}"
    _, said = run_block(Namespace(), f"(exec -a {marker} sleep 300) & echo started")
    assert said == b"exit 0"
    survivors = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert survivors.stdout == ""


def overlay_upper(tmp_path, script):
    """Run script in a name space with an overlay at /n/out; return the upper layer."""
    for d in ("lower", "upper", "work"):
        (tmp_path / d).mkdir(exist_ok=True)
    ns = Namespace({}, ("out", Overlay(tmp_path / "lower", tmp_path / "upper",
                                       tmp_path / "work")))
    result, said = run_block(ns, script)
    assert said == b"exit 0", result.stderr
    return tmp_path / "upper"


def test_commit_applies_new_changed_and_removed_files_in_one_transaction(tmp_path):
    chunk = Chunk.create(tmp_path / "cpu0", 1 << 20)
    chunk.write("keep", b"kept\n")
    chunk.write("gone", b"x")
    chunk.write("dir/a", b"a")
    lower = tmp_path / "lower"
    lower.mkdir()
    for path in ("keep", "gone", "dir/a"):
        (lower / path).parent.mkdir(parents=True, exist_ok=True)
        (lower / path).write_bytes(chunk.read(path))
    upper = overlay_upper(tmp_path, "cd /n/out; echo changed > keep; rm gone; "
                                    "rm -r dir; mkdir dir; echo b > dir/b; mkdir -p x/y; "
                                    "echo deep > x/y/z")
    assert commit(chunk, upper, "d0.cpu") == 3
    assert chunk.read("keep") == b"changed\n" and not chunk.exists("gone")
    assert chunk.read("x/y/z") == b"deep\n" and chunk.read("dir/b") == b"b\n"
    assert not chunk.exists("dir/a")  # an opaque directory replaces what was there
    chunk.close()


def test_a_commit_that_cannot_be_kept_keeps_nothing(tmp_path):
    chunk = Chunk.create(tmp_path / "cpu0", 64 << 10)
    before = chunk.used
    upper = overlay_upper(tmp_path, "cd /n/out; echo small > a; "
                                    "head -c 200000 /dev/urandom > big")
    with pytest.raises(CommitError, match="nothing it wrote there was kept"):
        commit(chunk, upper, "d0.cpu")
    assert chunk.used == before and not chunk.exists("a")
    (tmp_path / "l").mkdir()
    upper = overlay_upper(tmp_path / "l", "cd /n/out; echo a > a; ln -s a link")
    with pytest.raises(CommitError, match="symbolic link at link"):
        commit(chunk, upper, "d0.cpu")
    assert chunk.used == before
    chunk.close()


def test_the_cache_fills_once_shares_a_fill_and_evicts_the_least_recently_used(tmp_path):
    cache = DiskCache(tmp_path / "cache", limit=250)
    fills = []

    async def fill(path, size=100):
        fills.append(path.name)
        await asyncio.sleep(0.01)
        (path / "f").write_bytes(b"x" * size)
        return size

    async def scenario():
        a1, a2 = await asyncio.gather(cache.acquire("a", fill), cache.acquire("a", fill))
        assert a1 == a2 and fills == ["a"]
        cache.release("a")
        cache.release("a")
        await cache.acquire("b", fill)
        cache.release("b")
        await cache.acquire("a", fill)  # a hit: a is now the most recently used
        cache.release("a")
        await cache.acquire("c", fill)  # 300 bytes: b, the least recently used, goes
        cache.release("c")
        return sorted(cache.entries)

    assert asyncio.run(scenario()) == ["a", "c"]
    assert fills == ["a", "b", "c"]
    assert cache.counters.hits == 2 and cache.counters.evictions == 1
    assert not (tmp_path / "cache" / "b").exists()


def test_a_failed_fill_leaves_nothing_and_is_tried_again(tmp_path):
    cache = DiskCache(tmp_path / "cache", limit=1000)

    async def bad(path):
        raise OSError("the node went away")

    async def good(path):
        return 1

    async def scenario():
        with pytest.raises(OSError):
            await cache.acquire("a", bad)
        assert "a" not in cache.entries and not (tmp_path / "cache" / "a").exists()
        await cache.acquire("a", good)

    asyncio.run(scenario())
    assert cache.counters.fills == 1


def test_the_turn_goes_round_across_calls(tmp_path):
    path = tmp_path / "next"
    assert [next_turn(3, path) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    path.write_text("garbage")
    assert next_turn(3, path) == 0


def test_a_disk_may_be_named_by_its_path_in_a_block():
    from geryon.rcpu.block import disk_name
    assert disk_name("/n/d0.cpu") == "d0.cpu" and disk_name("d0.mbox") == "d0.mbox"
    assert disk_name("/n/d1.cpu/") == "d1.cpu"
