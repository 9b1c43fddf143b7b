"""Owen's data records: whole, byte by byte, with trailing garbage and at the limits;
result records and the bare form; file2rec and rec2file on real files; and properties
(round trips in pieces of any size; garbage only ever raises RecordError)."""

import io

import pytest
from hypothesis import given, settings, strategies as st

from geryon.errors import GeryonError
from geryon.owen.records import (Record, RecordError, RecordReader, file2rec, format_record,
                                 format_result, header, read_records, read_results, rec2file,
                                 split_lines)

STREAM = (b"data 12 greeting\nhello world\n"
          b"data 0\n"
          b"data 5 a name with spaces\n\x00\x01\n\xff\n"
          b"data 7\ndata 3\n")    # a record's data may look like a header
RECORDS = [Record(b"hello world\n", "greeting"), Record(b""),
           Record(b"\x00\x01\n\xff\n", "a name with spaces"), Record(b"data 3\n")]


def feed(data: bytes, size: int, **limits) -> list[Record]:
    reader = RecordReader(**limits)
    out = []
    for i in range(0, len(data), size):
        reader.feed(data[i:i + size])
        out.extend(reader)
    reader.close()
    return out


def test_a_whole_stream_and_its_records_formatted_back():
    assert read_records(STREAM) == RECORDS
    assert b"".join(format_record(r.data, r.name) for r in RECORDS) == STREAM


@pytest.mark.parametrize("size", [1, 2, 3, 7, 17, 1000])
def test_fed_in_pieces_of_any_size(size):
    assert feed(STREAM, size) == RECORDS


def test_the_seeds_result_records():
    results = (b"data 33 2\n68b329da9893e34099c7d8ad5cb9c940\n"
               b"data 33 0\naf325e1d9e7df186ec43b7064971e591\n")
    assert read_results(results) == [(2, b"68b329da9893e34099c7d8ad5cb9c940\n"),
                                     (0, b"af325e1d9e7df186ec43b7064971e591\n")]
    assert format_result(2, b"68b329da9893e34099c7d8ad5cb9c940\n") == results[:43]
    assert format_result(2, b"out\n", bare=True) == b"out\n"
    assert header(33, "2") == b"data 33 2\n" and header(0) == b"data 0\n"


def test_a_record_without_a_task_number_is_no_result():
    with pytest.raises(RecordError, match="not a result record"):
        Record(b"x", "name").taskno
    with pytest.raises(RecordError, match="not a result record"):
        read_results(b"data 1\nx")


@pytest.mark.parametrize("garbage,words", [
    (b"half a header", "ends inside a header line at byte 0"),
    (b"data 5\nabc", "ends inside the record at byte 0: its header says 5 bytes but only 3"),
    (b"date 5\nabcde", "bad record header at byte 0"),
    (b"data -5\n", "bad record header"),
    (b"data 5x\nabcde", "bad record header"),
    (b"data\n", "bad record header"),
    (b"data  5\nabcde", "bad record header"),
    (b"data 1\nxdata 1 \xff\n", "record name at byte 8 is not UTF-8"),
    (b"data 1\nx\n", "bad record header at byte 8: b.."),
    (b"data 123456789012345678901\n", "bad record header"),
])
def test_garbage_gets_our_error_naming_the_offset(garbage, words):
    for size in (1, len(garbage)):
        with pytest.raises(RecordError, match=words.replace("(", r"\(")):
            feed(garbage, size)


def test_trailing_garbage_after_whole_records_is_refused():
    with pytest.raises(RecordError, match=f"at byte {len(STREAM)}"):
        read_records(STREAM + b"garbage")
    with pytest.raises(RecordError, match=f"at byte {len(STREAM)}"):
        read_records(STREAM + b"data 9\nshort")


def test_limits_are_refused_before_the_bytes_are_buffered():
    with pytest.raises(RecordError, match=r"more than the limit of 10 bytes \(max_record\)"):
        reader = RecordReader(max_record=10)
        reader.feed(b"data 11\n")
        reader.next()
    assert read_records(b"data 10\n0123456789", max_record=10) == [Record(b"0123456789")]
    reader = RecordReader(max_header=16)
    reader.feed(b"data 1 " + b"n" * 8)
    assert reader.next() is None          # 15 bytes, a newline could still come
    with pytest.raises(RecordError, match=r"longer than the limit of 16 bytes \(max_header\)"):
        reader.feed(b"n")
        reader.next()
    assert read_records(b"data 1 nnnnnnnn\nx", max_header=17) == [Record(b"x", "nnnnnnnn")]


def test_nothing_may_be_fed_after_close():
    reader = RecordReader()
    reader.close()
    with pytest.raises(RecordError, match="after the end"):
        reader.feed(b"data 0\n")


def test_names_are_one_line():
    with pytest.raises(RecordError, match="newline"):
        format_record(b"x", "two\nlines")
    assert format_record(b"x", "") == b"data 1\nx"


def test_lines_keep_their_newlines():
    assert split_lines(b"a\n\nb\r\nc") == [b"a\n", b"\n", b"b\r\n", b"c"]
    assert split_lines(b"a\n") == [b"a\n"]
    assert split_lines(b"") == []


def test_file2rec_and_rec2file_on_real_files(tmp_path):
    (tmp_path / "in").mkdir()
    one, two = tmp_path / "in" / "one", tmp_path / "in" / "two words"
    one.write_bytes(b"first\n")
    two.write_bytes(bytes(range(256)) * 5000)
    stream = b"".join(file2rec([one, str(two)]))
    assert read_records(stream) == [Record(b"first\n", str(one)),
                                    Record(two.read_bytes(), str(two))]
    out = tmp_path / "out"
    written = rec2file(stream, out)
    assert written == [out / str(one).lstrip("/"), out / str(two).lstrip("/")]
    assert written[1].read_bytes() == two.read_bytes()
    numbered = rec2file(io.BytesIO(stream), tmp_path / "numbered", names=False)
    assert [p.name for p in numbered] == ["0", "1"]
    assert numbered[0].read_bytes() == b"first\n"
    pieces = [stream[i:i + 1000] for i in range(0, len(stream), 1000)]
    assert rec2file(iter(pieces), tmp_path / "pieces", names=False)[1].read_bytes() == \
        two.read_bytes()


def test_rec2file_numbers_unnamed_records_and_refuses_escaping_names(tmp_path):
    assert [p.name for p in rec2file(b"data 1 a\nxdata 1\ny", tmp_path)] == ["a", "1"]
    for name in ("..", "a/../../b", "/", "."):
        with pytest.raises(RecordError, match="not a file name inside the directory"):
            rec2file(format_record(b"x", name), tmp_path / "d")
    assert not (tmp_path.parent / "b").exists()


def test_file2rec_says_which_file_it_cannot_read(tmp_path):
    with pytest.raises(RecordError, match=f"{tmp_path}/absent: cannot read it"):
        list(file2rec([tmp_path / "absent"]))


def test_record_error_is_ours():
    assert issubclass(RecordError, GeryonError)


# -- properties ---------------------------------------------------------------------------

names = st.none() | st.text(st.characters(blacklist_characters="\n", blacklist_categories=(
    "Cs",)), min_size=1, max_size=20)
records = st.lists(st.builds(Record, st.binary(max_size=60), names), max_size=8)


@settings(max_examples=150, deadline=None)
@given(records, st.integers(1, 50))
def test_records_round_trip_in_pieces_of_any_size(recs, size):
    stream = b"".join(format_record(r.data, r.name) for r in recs)
    assert feed(stream, size) == recs
    assert read_records(stream) == recs


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=40)), max_size=8))
def test_result_records_round_trip(results):
    stream = b"".join(format_result(n, out) for n, out in results)
    assert read_results(stream) == results
    assert b"".join(format_result(n, out, bare=True) for n, out in results) == \
        b"".join(out for _, out in results)


@settings(max_examples=100, deadline=None)
@given(records)
def test_byte_by_byte(recs):
    stream = b"".join(format_record(r.data, r.name) for r in recs)
    assert feed(stream, 1) == recs


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.integers(1, 10))
def test_garbage_only_raises_record_error(data, size):
    try:
        feed(data, size, max_record=32, max_header=24)
    except RecordError:
        pass


@settings(max_examples=150, deadline=None)
@given(records, st.data())
def test_mangled_streams_only_raise_record_error(recs, data):
    stream = bytearray(b"".join(format_record(r.data, r.name) for r in recs))
    if stream:
        i = data.draw(st.integers(0, len(stream) - 1))
        stream[i] = data.draw(st.sampled_from(b"d 0 9\n\xff"))
    try:
        feed(bytes(stream), data.draw(st.integers(1, 9)))
    except RecordError:
        pass
