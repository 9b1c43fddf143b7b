"""idx, agg and intermediate: the installed commands run as subprocesses, and their pure core."""

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geryon.mapreduce.lines import (Aggregator, Indexer, Partitioner, Pieces, Tally, expand,
                                    hash65599)

BIN = Path(sys.executable).parent
SLOW = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def run(tool, *args, input=b"", cwd=None, env=None):
    return subprocess.run([str(BIN / tool), *map(str, args)], input=input,
                          capture_output=True, cwd=cwd, env=env, timeout=60)


def partitions(directory, prefix, r):
    return [(Path(directory) / f"{prefix}{i}").read_bytes() for i in range(r)]


def lines_of(data: bytes) -> list[bytes]:
    """The newline-ended lines of a partition file (splitlines would cut at CR too)."""
    assert data == b"" or data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def reference_65599(key: str, r: int) -> int:
    """The formula written out again, over characters, with Python's unbounded ints."""
    h = 0
    for ch in key:
        h = (h * 65599 + ord(ch)) % 2**32
    return (h % 2**31) % r


# ---- idx -------------------------------------------------------------------------------

def test_idx_words_lower_cased_one_per_line():
    out = run("idx", input=b"Hello, World!  hello\nThe_cat 42 e.g. end.\n\n...x")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (b"hello 1\nworld 1\nhello 1\nthe_cat 1\n42 1\ne 1\ng 1\nend 1\n"
                          b"x 1\n")
    assert out.stderr == b""


def test_idx_non_ascii_and_invalid_utf8_bytes_separate_words():
    text = "caf\u00e9 na\u00efve \u00dcber STRASSE\u00df".encode() + b" ab\xffcd \xc3(ok\x00z"
    out = run("idx", input=text)
    assert out.returncode == 0
    assert out.stdout == b"caf 1\nna 1\nve 1\nber 1\nstrasse 1\nab 1\ncd 1\nok 1\nz 1\n"


def test_idx_empty_input_and_only_separators():
    assert run("idx").stdout == b""
    assert run("idx", input=b" .,;\n\n\t\xff").stdout == b""


def test_idx_files_in_order_a_word_never_joins_across_files(tmp_path):
    (tmp_path / "a").write_bytes(b"one Two")
    (tmp_path / "b").write_bytes(b"three")
    (tmp_path / "empty").write_bytes(b"")
    out = run("idx", tmp_path / "a", tmp_path / "empty", tmp_path / "b")
    assert (out.returncode, out.stdout) == (0, b"one 1\ntwo 1\nthree 1\n")


def test_idx_reports_an_unreadable_file_and_goes_on(tmp_path):
    (tmp_path / "a").write_bytes(b"word")
    out = run("idx", tmp_path / "missing", tmp_path, tmp_path / "a")
    assert out.returncode == 1
    assert out.stdout == b"word 1\n"
    assert f"idx: cannot open {tmp_path / 'missing'}: No such file".encode() in out.stderr
    assert f"idx: cannot read {tmp_path}: Is a directory".encode() in out.stderr


def test_idx_a_word_longer_than_a_chunk():
    word = b"ab" * (3 << 20)
    out = run("idx", input=b"x " + word.upper() + b" y")
    assert out.stdout == b"x 1\n" + word + b" 1\ny 1\n"


def test_idx_reads_stdin_for_a_dash(tmp_path):
    (tmp_path / "a").write_bytes(b"file")
    out = run("idx", tmp_path / "a", "-", input=b"stdin")
    assert out.stdout == b"file 1\nstdin 1\n"


@pytest.mark.parametrize("memory", [[], ["-S", "0"], ["-S", "300"]])
def test_idx_c_is_idx_sort_agg_in_one(tmp_path, memory):
    (tmp_path / "a").write_bytes(Path(os.__file__).read_bytes() + b" tail")
    (tmp_path / "b").write_bytes(b"word\xffWORD " + b"x" * (3 << 20) + b" Word.")
    files = [tmp_path / "a", tmp_path / "empty", tmp_path / "b"]
    (tmp_path / "empty").write_bytes(b"")
    want = subprocess.run(f"{BIN}/idx {' '.join(map(str, files))} | LC_ALL=C sort | "
                          f"{BIN}/agg", shell=True, capture_output=True, check=True).stdout
    out = run("idx", "-c", *memory, *files)
    assert (out.returncode, out.stdout) == (0, want)
    assert (b"counting with agg -s" in out.stderr) == bool(memory), out.stderr
    assert b"-S is the memory of -c" in run("idx", "-S", "1M").stderr
    if memory:  # the agg -s it hands over to keeps to the same memory, and says so
        assert b"agg: over" in out.stderr


def test_idx_c_whose_reader_goes_away_ends_quietly(tmp_path):
    (tmp_path / "a").write_bytes(Path(os.__file__).read_bytes())
    out = subprocess.run(f"{BIN}/idx -c -S 1K {tmp_path / 'a'} | head -1; "
                         "echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                         capture_output=True, timeout=60)
    assert out.stdout.split(b"\n")[1] in (b"0", b"141"), out


# ---- agg -------------------------------------------------------------------------------

def test_agg_sums_consecutive_equal_keys():
    out = run("agg", input=b"a 1\na 1\na 3\nb 2\nc 1\nc -1\na 5\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"a 5\nb 2\nc 0\na 5\n"
    assert out.stderr == b""


def test_agg_keys_with_blanks_and_the_first_separator_kept():
    out = run("agg", input=b"new york 2\nnew york  3\nnew\tyork 1\nk\t4\nk 1\nz 7\r\n")
    assert out.stdout == b"new york 5\nnew\tyork 1\nk\t5\nz 7\n"


def test_agg_reports_bad_lines_and_exits_1_with_the_good_sums():
    out = run("agg", input=b"a 1\nnot a count x\n\na 2\n12\nb 1.5\nb 1")
    assert out.returncode == 1
    assert out.stdout == b"a 3\nb 1\n"
    assert out.stderr == (b"agg: 4 lines not `key count` left out of the sums "
                          b"(first: line 2: 'not a count x')\n")


def test_agg_empty_input():
    out = run("agg")
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")


def test_agg_a_group_spanning_many_chunks_and_a_huge_count():
    lines = b"the 1\n" * 500_000 + b"the 99999999999999999999999\nzebra 1\n"
    out = run("agg", input=lines)
    assert out.stdout == b"the 100000000000000000499999\nzebra 1\n"


def test_agg_files_are_one_stream(tmp_path):
    (tmp_path / "1").write_bytes(b"a 1\nb 1")
    (tmp_path / "2").write_bytes(b"b 2\n")
    assert run("agg", tmp_path / "1", tmp_path / "2").stdout == b"a 1\nb 3\n"


# ---- the word count pipeline -------------------------------------------------------------

def test_cat_idx_sort_agg_equals_a_word_count(tmp_path):
    texts = [
        Path(os.__file__).read_bytes(),
        "Ünïcödé wörds, MIXED case; under_scores and 42 numbers.".encode() * 50,
        b"\xff\xfe invalid \x80utf8\xc3 " * 100,
        b"",
        b"word" * 100_000,
    ]
    for i, text in enumerate(texts):
        (tmp_path / f"f{i}").write_bytes(text)
    names = " ".join(str(tmp_path / f"f{i}") for i in range(len(texts)))
    out = subprocess.run(f"cat {names} | {BIN}/idx | LC_ALL=C sort | {BIN}/agg",
                         shell=True, capture_output=True, check=True, timeout=60).stdout
    expected = Counter()
    for text in texts:
        expected.update(re.findall(rb"[a-z0-9_]+", text.lower()))
    got = {}
    for line in out.splitlines():
        word, count = line.split(b" ")
        assert word not in got
        got[word] = int(count)
    assert got == dict(expected)
    assert out.splitlines() == sorted(out.splitlines())


# ---- mrsort and agg -s --------------------------------------------------------------------

def c_sort(*args, input=b""):
    """What `LC_ALL=C sort` itself writes."""
    return subprocess.run(["sort", *map(str, args)], input=input, capture_output=True,
                          check=True, env={**os.environ, "LC_ALL": "C"}, timeout=60).stdout


SORT_CASES = [b"", b"\n", b"b\na\n", b"b\na", b"\n\nx\n\n", b"a\x00b\na\na\x00\n",
              b"\xff\n\x80\nA\na\n\r\n \n", b"same\n" * 1000 + b"other\n",
              b"x" * (3 << 20) + b"\nshort\n" + b"y" * (2 << 20)]


@pytest.mark.parametrize("memory", [None, "0", "1K"])
def test_mrsort_writes_what_sort_writes(memory):
    option = [] if memory is None else ["-S", memory]
    for data in SORT_CASES:
        out = run("mrsort", *option, input=data)
        assert out.returncode == 0, out.stderr
        assert out.stdout == c_sort(input=data), data[:40]
        handed_over = b"sorting with sort(1)" in out.stderr
        if memory != "1K":
            assert handed_over == (memory == "0" and data != b""), out.stderr


def test_mrsort_files_each_end_a_line_as_sort_has_it(tmp_path):
    (tmp_path / "1").write_bytes(b"b\na")        # no final newline: `a` ends with the file
    (tmp_path / "2").write_bytes(b"c\nz")
    (tmp_path / "empty").write_bytes(b"")
    files = [tmp_path / "1", tmp_path / "empty", tmp_path / "2"]
    for option in ([], ["-S0"]):
        out = run("mrsort", *option, *files)
        assert out.stdout == c_sort(*files) == b"a\nb\nc\nz\n"


@pytest.mark.parametrize("memory", [[], ["-S0"]])
def test_an_unreadable_file_is_an_error_as_it_is_for_sort(tmp_path, memory):
    (tmp_path / "a").write_bytes(b"2\n1\n")
    for bad in (tmp_path / "missing", tmp_path):  # no such file; a directory
        for tool in (["mrsort"], ["agg", "-s"]):
            out = run(*tool, *memory, tmp_path / "a", bad, tmp_path / "a")
            assert (out.returncode, out.stdout) == (2, b""), out.stderr
            assert f"{tool[0]}: cannot ".encode() in out.stderr
        assert subprocess.run(["sort", tmp_path / "a", bad], capture_output=True).stdout == b""


@pytest.mark.parametrize("args, message", [
    (["-S"], b"requires argument"), (["-S", "12Q"], b"'12Q' is not a size"),
    (["-x"], b"option -x not recognized")])
def test_mrsort_usage_errors(args, message):
    out = run("mrsort", *args)
    assert out.returncode == 2
    assert message in out.stderr and b"usage: mrsort" in out.stderr


def test_agg_s_is_sort_then_agg(tmp_path):
    data = b"b 1\na 2\nb 3\nnot a count x\na b 1\na 5 1\na 9\nk\t4\nk 1\n" * 3
    expected = subprocess.run(f"LC_ALL=C sort | {BIN}/agg", shell=True, input=data,
                              capture_output=True, timeout=60)
    for option in (["-s"], ["-s", "-S", "0"]):
        out = run("agg", *option, input=data)
        assert (out.returncode, out.stdout) == (expected.returncode, expected.stdout)
        assert expected.stderr in out.stderr  # the same report of the bad lines
    assert b"-S is the memory of -s" in run("agg", "-S", "1M").stderr


def test_agg_s_a_word_count_in_one_process(tmp_path):
    text = Path(os.__file__).read_bytes()
    (tmp_path / "t").write_bytes(text)
    words = run("idx", tmp_path / "t").stdout
    out = run("agg", "-s", input=words)
    expected = Counter(re.findall(rb"[a-z0-9_]+", text.lower()))
    assert out.stdout == b"".join(b"%s %d\n" % (w, n) for w, n in sorted(expected.items()))


# ---- intermediate ------------------------------------------------------------------------

KEYS_65599 = ["a", "the", "hello", "zz_9", "caf\u00e9", "\u00fcber", "x" * 200, "\u4e2d\u6587"]


@pytest.mark.parametrize("r", [1, 5, 7])
def test_intermediate_65599_is_the_formula(tmp_path, r):
    lines = [f"{key} {n}" for n, key in enumerate(KEYS_65599)]
    out = run("intermediate", "--hash", "65599", r, "p", cwd=tmp_path,
              input="\n".join(lines).encode() + b"\n")
    assert out.returncode == 0 and out.stderr == b""
    files = partitions(tmp_path, "p", r)
    for line, key in zip(lines, KEYS_65599):
        expected = reference_65599(key, r)
        assert (line + "\n").encode() in files[expected].splitlines(keepends=True)
    assert sum(len(f.splitlines()) for f in files) == len(lines)


def test_hash65599_known_values():
    assert hash65599(b"") == 0
    assert hash65599(b"a") == 97
    assert hash65599(b"ab") == 97 * 65599 + 98
    for key in KEYS_65599:
        assert (hash65599(key.encode()) & 0x7FFFFFFF) % 1000 == reference_65599(key, 1000)
    assert hash65599(b"\xff") == 0xFFFD          # an invalid byte is U+FFFD, as in Inferno


def test_intermediate_65599_keeps_only_two_field_lines_and_says_so(tmp_path):
    out = run("intermediate", "--hash=65599", 3, "q", cwd=tmp_path,
              input=b"a 1\none\nb  2\nx y z\n\n\tc\t3\n")
    assert out.returncode == 0
    files = partitions(tmp_path, "q", 3)
    assert sorted(b"".join(files).splitlines()) == [b"\tc\t3", b"a 1", b"b  2"]
    assert out.stderr == (b"intermediate: 3 lines not of exactly two fields went to no "
                          b"partition (first: line 2: 'one')\n"
                          b"reporter:counter:intermediate,lines left out,3\n")


def test_intermediate_default_keys_hadoop_style_on_xxh3(tmp_path):
    lines = [b"k\tv1", b"k\tother value", b"new york\t1", b"new york 2", b"word 1",
             b"word 2 3", b"  spaced key", b"\tempty key", b"caf\xc3\xa9 1", b"\xff\xfe 1",
             b"a\tb\tc"]
    keys = [b"k", b"k", b"new york", b"new", b"word", b"word", b"spaced", b"", b"caf\xc3\xa9",
            b"\xff\xfe", b"a"]
    out = run("intermediate", 4, "part.", cwd=tmp_path, input=b"\n".join(lines))
    assert out.returncode == 0 and out.stderr == b""
    files = [lines_of(f) for f in partitions(tmp_path, "part.", 4)]
    for line, key in zip(lines, keys):
        where = [i for i, f in enumerate(files) if line in f]
        assert where == [xxhash.xxh3_64_intdigest(key) % 4], line
    assert sorted(sum(files, [])) == sorted(lines)


def test_intermediate_reports_lines_without_a_key(tmp_path):
    out = run("intermediate", 2, "p", cwd=tmp_path, input=b"a 1\n\n   \nb 1\n\r\n")
    assert out.returncode == 0
    assert sorted(b"".join(partitions(tmp_path, "p", 2)).splitlines()) == [b"a 1", b"b 1"]
    assert out.stderr == (b"intermediate: 3 lines without a key (empty or only blanks) "
                          b"went to no partition (first: line 2: '')\n"
                          b"reporter:counter:intermediate,lines left out,3\n")


def test_intermediate_creates_every_file_for_empty_input(tmp_path):
    (tmp_path / "p3").write_bytes(b"stale")
    out = run("intermediate", 6, "p", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, b"")
    assert partitions(tmp_path, "p", 6) == [b""] * 6
    assert not (tmp_path / "p6").exists()


def test_intermediate_long_lines_and_no_final_newline(tmp_path):
    long = b"key " + b"v" * (3 << 20)
    out = run("intermediate", 3, "p", cwd=tmp_path, input=b"a 1\n" + long + b"\nb 1\nlast 1")
    assert out.returncode == 0
    got = b"".join(partitions(tmp_path, "p", 3))
    assert sorted(got.splitlines()) == sorted([b"a 1", long, b"b 1", b"last 1"])
    assert got.count(b"\n") == 4


def test_intermediate_write_error_exits_1_naming_the_file(tmp_path):
    (tmp_path / "p1").symlink_to("/dev/full")
    out = run("intermediate", 2, "p", cwd=tmp_path, input=b"line 1\n" * 200_000)
    assert out.returncode == 1
    assert b"intermediate: cannot write p1: No space left on device" in out.stderr


def test_intermediate_unwritable_prefix(tmp_path):
    out = run("intermediate", 2, tmp_path / "no" / "such" / "p", input=b"a 1\n")
    assert out.returncode == 1
    assert b"cannot create " in out.stderr and b"No such file or directory" in out.stderr


@pytest.mark.parametrize("args, message", [
    ([], b"give the number of partitions R and a prefix"),
    (["5"], b"give the number of partitions R and a prefix"),
    (["0", "p"], b"R must be a whole number of partitions, 1 or more, not '0'"),
    (["five", "p"], b"R must be a whole number of partitions, 1 or more, not 'five'"),
    (["--hash", "md5", "5", "p"], b"unknown hash 'md5'; the hashes are 65599 and xxh3"),
    (["--hash"], b"--hash needs a value"),
    (["-x", "5", "p"], b"unknown option -x"),
])
def test_intermediate_usage_errors(tmp_path, args, message):
    out = run("intermediate", *args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and b"usage: intermediate" in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tool", ["idx", "agg", "mrsort", "intermediate"])
def test_help_shows_an_example(tool):
    for flag in ("-h", "--help"):
        out = run(tool, flag)
        assert out.returncode == 0
        assert out.stdout.startswith(f"usage: {tool}".encode())
        assert b"\nExample" in out.stdout
        assert f"| {tool}".encode() in out.stdout


@pytest.mark.parametrize("tool", ["idx", "agg", "mrsort"])
def test_unknown_option(tool):
    out = run(tool, "--frobnicate")
    assert out.returncode == 2 and b"option --frobnicate not recognized" in out.stderr


def test_a_closed_pipe_ends_idx_quietly():
    out = subprocess.run(f"yes 'some words here' | head -c 50000000 | {BIN}/idx | head -1",
                         shell=True, capture_output=True, timeout=60)
    assert out.stdout == b"some 1\n" and out.stderr == b""


# ---- properties --------------------------------------------------------------------------

garbage = st.binary(max_size=2000) | st.lists(
    st.sampled_from([b"a", b"A", b" ", b"\t", b"\n", b"1", b"-", b"\xff", b"\xc3", b"\r",
                     b"\x00", b"word 1\n", b"k\tv\n"]), max_size=300).map(b"".join)


@SLOW
@given(data=garbage)
def test_garbage_never_crashes_any_tool(tmp_path, data):
    out = run("idx", input=data)
    assert out.returncode == 0 and out.stderr == b""
    out = run("agg", input=data)
    assert out.returncode in (0, 1) and b"Traceback" not in out.stderr
    assert (out.returncode == 1) == out.stderr.startswith(b"agg: ")
    for hash_name in ("xxh3", "65599"):
        out = run("intermediate", "--hash", hash_name, 3, "p", cwd=tmp_path, input=data)
        assert out.returncode == 0 and b"Traceback" not in out.stderr
        kept = lines_of(b"".join(partitions(tmp_path, "p", 3)))
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        assert Counter(kept) <= Counter(lines)
        left = len(lines) - len(kept)
        assert (left > 0) == (f"lines left out,{left}".encode() in out.stderr)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=garbage)
def test_the_counting_tools_write_what_sort_and_agg_write_on_garbage(data):
    """mrsort = LC_ALL=C sort, agg -s = sort | agg, idx -c = idx | sort | agg, in memory
    and past the memory limit (-S0: handed to sort(1) or agg -s)."""
    counted = subprocess.run(f"{BIN}/idx | LC_ALL=C sort | {BIN}/agg", shell=True,
                             input=data, capture_output=True, timeout=60).stdout
    sorted_then = subprocess.run(f"LC_ALL=C sort | {BIN}/agg", shell=True, input=data,
                                 capture_output=True, timeout=60)
    for option in ([], ["-S0"]):
        out = run("idx", "-c", *option, input=data)
        assert (out.returncode, out.stdout) == (0, counted)
        out = run("agg", "-s", *option, input=data)
        assert (out.returncode, out.stdout) == (sorted_then.returncode, sorted_then.stdout)
        assert sorted_then.stderr in out.stderr and b"Traceback" not in out.stderr
        out = run("mrsort", *option, input=data)
        assert (out.returncode, out.stdout) == (0, c_sort(input=data))


keys = st.binary(min_size=1, max_size=12).filter(lambda k: b"\n" not in k and b"\t" not in k)
values = st.binary(max_size=12).filter(lambda v: b"\n" not in v)


@SLOW
@given(pairs=st.lists(st.tuples(keys, values), min_size=1, max_size=40), r=st.integers(1, 9))
def test_partition_is_a_function_of_the_key_only(tmp_path, pairs, r):
    lines = [k + b"\t" + v for k, v in pairs]
    out = run("intermediate", r, "p", cwd=tmp_path, input=b"\n".join(lines) + b"\n")
    assert out.returncode == 0 and out.stderr == b""
    files = [lines_of(f) for f in partitions(tmp_path, "p", r)]
    home = {}
    for i, f in enumerate(files):
        for line in f:
            key = line.split(b"\t", 1)[0]
            assert home.setdefault(key, i) == i
    assert Counter(sum(files, [])) == Counter(lines)


def cuts(data, points):
    points = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@given(data=garbage, points=st.lists(st.integers(0, 10_000), max_size=8))
def test_indexer_output_does_not_depend_on_the_chunks(data, points):
    whole = Indexer()
    expected = whole.feed(data) + whole.finish()
    chunked = Indexer()
    got = b"".join(chunked.feed(c) for c in cuts(data, points)) + chunked.finish()
    assert got == expected
    assert expected == b"".join(w + b" 1\n" for w in re.findall(rb"[a-z0-9_]+", data.lower()))


def feed_lines(core, chunks):
    pieces = Pieces(b"\n")
    out = []
    for chunk in chunks:
        block = pieces.feed(chunk)
        if block is not None:
            out.append(core(block.split(b"\n")))
    tail = pieces.finish()
    if tail is not None:
        out.append(core([tail]))
    return out


@given(data=garbage, points=st.lists(st.integers(0, 10_000), max_size=8))
def test_aggregator_output_does_not_depend_on_the_chunks(data, points):
    results = []
    for chunks in ([data], cuts(data, points)):
        agg = Aggregator()
        out = b"".join(feed_lines(agg.feed, chunks)) + agg.finish()
        results.append((out, agg.bad, agg.first_bad))
    assert results[0] == results[1]


@given(data=garbage, points=st.lists(st.integers(0, 10_000), max_size=8),
       r=st.integers(1, 5), hash_name=st.sampled_from(["xxh3", "65599"]))
def test_partitioner_output_does_not_depend_on_the_chunks(data, points, r, hash_name):
    results = []
    for chunks in ([data], cuts(data, points)):
        part = Partitioner(r, hash_name)
        blocks = feed_lines(part.split, chunks)
        files = [b"".join(block[i] for block in blocks) for i in range(r)]
        results.append((files, part.left_out, part.first_left_out))
    assert results[0] == results[1]


@given(data=garbage, points=st.lists(st.integers(0, 10_000), max_size=8))
def test_tally_runs_are_sorts_lines(data, points):
    tally = Tally(1 << 30)
    feed_lines(lambda lines: tally.feed(lines, sum(map(len, lines))), cuts(data, points))
    runs = [run for block in tally.runs(per_block=3) for run in block]
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    assert b"".join(expand(runs, block=7)) == b"".join(line + b"\n" for line in sorted(lines))
    assert b"".join(tally.lines(block=5)).count(b"\n") == len(lines)
