"""Owen's data records: the input of filesplit jobs and the results of every job.

A record is a header line and then exactly the bytes it announces:

    data <nbytes> [name]\\n<nbytes bytes>

An input record's name is optional (file2rec puts the file's name there); a result
record's name is the number of the task that made it (`data 33 2`).  Records follow one
another with nothing between them.  With filesplit -n a result file is the bare
concatenation of the outputs, headers left out.

RecordReader is pure, in h11's way: feed() it bytes in pieces of any size as they come
and next() hands out whole records; close() says whether the input stopped half way.
Its two states are a table (what it waits for -> how to go on).  A header longer than
max_header, or a record announcing more than max_record bytes, is refused before its
bytes are buffered, so a reader's memory is bounded by its limits.  Whatever the input,
the only error is RecordError.

file2rec and rec2file, the commands' libraries, are the only parts that touch files.
"""

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from geryon.errors import GeryonError

MAX_RECORD = 64 * 1024 * 1024   # bytes in one record's data, by default
MAX_HEADER = 4096               # bytes in one header line, newline included, by default

_HEADER = re.compile(rb"data ([0-9]{1,20})(?: (.*))?")
_CHUNK = 1024 * 1024            # file2rec reads files in pieces of this size


class RecordError(GeryonError):
    """Bytes that are not Owen records, or a record beyond a limit; the message names the
    byte offset and, for a limit, the limit."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its data and the name in its header (None if it has none)."""

    data: bytes
    name: str | None = None

    @property
    def taskno(self) -> int:
        """The task number a result record's name gives."""
        if self.name is None or not self.name.isascii() or not self.name.isdigit():
            raise RecordError(f"record named {self.name!r} is not a result record; its "
                              "header should end in a task number")
        return int(self.name)


def header(nbytes: int, name: str | None = None) -> bytes:
    """The header line of a record of nbytes bytes."""
    if name is None or name == "":
        return b"data %d\n" % nbytes
    if "\n" in name:
        raise RecordError(f"record name {name!r} holds a newline; a header is one line")
    return b"data %d %s\n" % (nbytes, name.encode("utf-8"))


def format_record(data: bytes, name: str | None = None) -> bytes:
    """A whole record: its header and its data."""
    return header(len(data), name) + data


def format_result(taskno: int, output: bytes, bare: bool = False) -> bytes:
    """The bytes a task's output adds to a result file: `data <len> <taskno>` and the
    output, or (bare, filesplit -n) the output alone."""
    if bare:
        return bytes(output)
    return header(len(output), str(taskno)) + output


class RecordReader:
    """Records out of bytes fed in any pieces."""

    # what the reader waits for -> the method that tries to go on from there
    _STEPS = {"header": "_header", "data": "_data"}

    def __init__(self, max_record: int = MAX_RECORD, max_header: int = MAX_HEADER,
                 what: str = "records"):
        self.max_record = max_record
        self.max_header = max_header
        self.what = what
        self._buf = bytearray()
        self._offset = 0            # offset in the whole stream of _buf[0]
        self._state = "header"
        self._pending: tuple[int, str | None, int] | None = None   # size, name, header offset
        self._closed = False

    def feed(self, data: bytes):
        """Take more of the stream."""
        if self._closed:
            raise RecordError(f"{self.what}: bytes fed after the end of the stream")
        self._buf += data

    def next(self) -> Record | None:
        """The next whole record, or None until more bytes are fed."""
        while True:
            step = getattr(self, self._STEPS[self._state])()
            if step is not _AGAIN:
                return step

    def close(self):
        """Say the stream has ended; RecordError if it ended inside a record."""
        self._closed = True
        if self._state == "data":
            size, _, at = self._pending
            raise RecordError(f"{self.what}: the stream ends inside the record at byte {at}: "
                              f"its header says {size} bytes but only {len(self._buf)} came")
        if self._buf:
            raise RecordError(f"{self.what}: the stream ends inside a header line at byte "
                              f"{self._offset} ({bytes(self._buf[:40])!r}); a header ends "
                              "with a newline")

    def __iter__(self) -> Iterator[Record]:
        while (record := self.next()) is not None:
            yield record

    def _header(self):
        end = self._buf.find(b"\n", 0, self.max_header)
        if end < 0:
            if len(self._buf) >= self.max_header:
                raise RecordError(f"{self.what}: the header line at byte {self._offset} is "
                                  f"longer than the limit of {self.max_header} bytes "
                                  "(max_header); is this a record file?")
            return None
        line = bytes(self._buf[:end])
        match = _HEADER.fullmatch(line)
        if match is None:
            raise RecordError(f"{self.what}: bad record header at byte {self._offset}: "
                              f"{line[:60]!r}; a header is 'data <nbytes> [name]' and a "
                              "newline")
        size = int(match.group(1))
        if size > self.max_record:
            raise RecordError(f"{self.what}: the record at byte {self._offset} is {size} "
                              f"bytes, more than the limit of {self.max_record} bytes "
                              "(max_record)")
        name = match.group(2)
        if name is not None:
            try:
                name = name.decode("utf-8") or None
            except UnicodeDecodeError:
                raise RecordError(f"{self.what}: the record name at byte {self._offset} is "
                                  "not UTF-8") from None
        self._pending = (size, name, self._offset)
        self._consume(end + 1)
        self._state = "data"
        return _AGAIN

    def _data(self):
        size, name, _ = self._pending
        if len(self._buf) < size:
            return None
        data = bytes(self._buf[:size])
        self._consume(size)
        self._state, self._pending = "header", None
        return Record(data, name)

    def _consume(self, n: int):
        del self._buf[:n]
        self._offset += n


_AGAIN = object()   # a step made progress; take the next one


def read_records(data: bytes, max_record: int = MAX_RECORD, max_header: int = MAX_HEADER,
                 what: str = "records") -> list[Record]:
    """Every record of a whole stream."""
    reader = RecordReader(max_record, max_header, what)
    reader.feed(data)
    records = list(reader)
    reader.close()
    return records


def read_results(data: bytes, what: str = "results") -> list[tuple[int, bytes]]:
    """(task number, output) for each result record of a whole result file."""
    return [(r.taskno, r.data) for r in read_records(data, what=what)]


def split_lines(data: bytes) -> list[bytes]:
    """filesplit -l's records: each line with its newline (the last as it is, if the
    data does not end in one)."""
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def file2rec(paths: Iterable[str | os.PathLike]) -> Iterator[bytes]:
    """The record stream of the files named, one record per file named as given, yielded
    in pieces (a header, then the data in pieces), so large files are never held whole."""
    for path in paths:
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                yield header(size, path)
                sent = 0
                while sent < size:
                    piece = f.read(min(_CHUNK, size - sent))
                    if not piece:
                        raise RecordError(f"{path}: it shrank while being read ({sent} of "
                                          f"{size} bytes); the record stream is cut there")
                    sent += len(piece)
                    yield piece
        except OSError as err:
            raise RecordError(f"{path}: cannot read it: {err.strerror}") from None


def rec2file(stream, dir: str | os.PathLike, names: bool = True,
             max_record: int = MAX_RECORD) -> list[Path]:
    """Write each record of stream (bytes, a binary file or an iterable of byte pieces)
    into dir as a file; return the paths written, in order.  With names, a file is named
    by its record's name (a leading '/' dropped; '..' refused); without (rec2file -n), or
    for a record with no name, by the record's number from 0."""
    dir = Path(dir)
    reader = RecordReader(max_record=max_record, what="rec2file")
    written: list[Path] = []
    for piece in _pieces(stream):
        reader.feed(piece)
        for record in reader:
            written.append(_write_record(dir, record, len(written), names))
    reader.close()
    return written


def _pieces(stream) -> Iterator[bytes]:
    if isinstance(stream, (bytes, bytearray, memoryview)):
        yield bytes(stream)
    elif hasattr(stream, "read"):
        while piece := stream.read(_CHUNK):
            yield piece
    else:
        yield from stream


def _write_record(dir: Path, record: Record, number: int, names: bool) -> Path:
    name = record.name if names and record.name else str(number)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or "\0" in name:
        raise RecordError(f"rec2file: record {number} is named {name!r}, which is not a "
                          "file name inside the directory; use rec2file -n to number the "
                          "files instead")
    path = dir.joinpath(*parts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(record.data)
    except OSError as err:
        raise RecordError(f"rec2file: cannot write {path}: {err.strerror}") from None
    return path
