"""What a worker and the scheduler say to each other through `task` and `reconnect`.

Pure, like geryon.owen.records, whose record format it uses for everything but the first
line.  On an open `task`:

  read   `<jobuniq>.<jobid>#<n> <deadline-seconds>\\n`     (waits until work is assigned)
  write  the worker's own id for the attempt (one word; `stoptask` names it later)
  read   the description, as records: `task` (quoted words: jobtype and arguments),
         `env` (quoted `TAG value` lines), one `file:<name>` per file, `input`, then an
         empty `end` record; one message may take several reads
  write  the result, one record named `ok` or `failed` (its data is the output, or for
         a failure the reason and the end of stderr); it may take several writes, and
         the last one returns once the scheduler has kept it
  close  ends the attempt (before a result: the attempt failed)

On `reconnect`: write a record `task` holding `<taskid> <worker-id>`, then the result
record as above.
"""

from dataclasses import dataclass

from geryon import quote
from geryon.owen.records import RecordError, RecordReader, format_record


class WireError(RecordError):
    """Bytes on `task` or `reconnect` that break the protocol."""


def format_header(taskid: str, deadline: float) -> bytes:
    return f"{taskid} {max(1, int(deadline))}\n".encode()


def parse_header(data: bytes) -> tuple[str, int]:
    words = data.decode("utf-8", errors="replace").split()
    if len(words) != 2 or "#" not in words[0] or not words[1].isdigit():
        raise WireError(f"task: {data[:80]!r} is not a task header "
                        "(`<jobuniq>.<jobid>#<n> <deadline>`)")
    return words[0], int(words[1])


@dataclass(frozen=True)
class Description:
    """What a worker is asked to do."""

    jobtype: str
    args: tuple
    env: tuple = ()        # (TAG, value)
    files: tuple = ()      # (name, bytes)
    input: bytes = b""
    output: str = "data"   # or "bundle"


def format_description(spec, output: str = "data") -> bytes:
    """The description of a TaskSpec (geryon.owen.generators), as records; output
    "bundle" asks for a tar of the task's working directory as its result."""
    parts = [format_record(quote.join([spec.jobtype, *spec.args]).encode(), "task")]
    if output != "data":
        parts.append(format_record(output.encode(), "output"))
    if spec.env:
        parts.append(format_record("".join(quote.join([t, v]) + "\n"
                                           for t, v in spec.env).encode(), "env"))
    for name, data in spec.files:
        parts.append(format_record(bytes(data), f"file:{name}"))
    parts.append(format_record(bytes(spec.input), "input"))
    parts.append(format_record(b"", "end"))
    return b"".join(parts)


class DescriptionReader:
    """A Description out of bytes fed as they come; done() gives it once `end` came."""

    def __init__(self, max_bytes: int):
        self.reader = RecordReader(max_record=max_bytes, what="task description")
        self.fields = {"task": None, "env": (), "files": [], "input": b"", "output": "data"}
        self.description: Description | None = None

    def feed(self, data: bytes) -> Description | None:
        self.reader.feed(data)
        while self.description is None and (record := self.reader.next()) is not None:
            self._take(record.name or "", record.data)
        return self.description

    def _take(self, name: str, data: bytes) -> None:
        text = lambda: data.decode("utf-8", errors="strict")  # noqa: E731
        try:
            if name == "task":
                words = quote.split(text())
                if not words:
                    raise WireError("task description: the task record names no job type")
                self.fields["task"] = words
            elif name == "env":
                self.fields["env"] = tuple(tuple(quote.split(line)[:2])
                                           for line in text().splitlines() if line)
            elif name.startswith("file:"):
                self.fields["files"].append((name[5:], data))
            elif name == "input":
                self.fields["input"] = data
            elif name == "output":
                self.fields["output"] = text()
            elif name == "end":
                if self.fields["task"] is None:
                    raise WireError("task description: it ended before its task record")
                words = self.fields["task"]
                self.description = Description(words[0], tuple(words[1:]),
                                               self.fields["env"], tuple(self.fields["files"]),
                                               self.fields["input"], self.fields["output"])
            else:
                raise WireError(f"task description: unknown record {name[:40]!r}")
        except UnicodeDecodeError:
            raise WireError(f"task description: record {name!r} is not UTF-8 text") from None


RESULT_NAMES = ("ok", "failed")


def format_result(ok: bool, data: bytes) -> bytes:
    return format_record(bytes(data), "ok" if ok else "failed")


class ResultReader:
    """One result record (and, on reconnect, the `task` record before it)."""

    def __init__(self, max_bytes: int, what: str, with_task: bool = False):
        self.reader = RecordReader(max_record=max_bytes, what=what)
        self.what = what
        self.task: tuple[str, str] | None = None if with_task else ("", "")
        self.result: tuple[bool, bytes] | None = None

    def feed(self, data: bytes) -> tuple[bool, bytes] | None:
        """Take more bytes; the (ok, data) result once it is whole."""
        if self.result is not None:
            raise WireError(f"{self.what}: bytes written after the result")
        self.reader.feed(data)
        while self.result is None and (record := self.reader.next()) is not None:
            if self.task is None:
                words = record.data.decode("utf-8", errors="replace").split()
                if record.name != "task" or len(words) != 2:
                    raise WireError(f"{self.what}: first write a record `task` holding "
                                    "`<taskid> <worker-id>`")
                self.task = (words[0], words[1])
            elif record.name in RESULT_NAMES:
                self.result = (record.name == "ok", record.data)
            else:
                raise WireError(f"{self.what}: a result record is named ok or failed, "
                                f"not {str(record.name)[:40]!r}")
        if self.result is not None:
            try:
                self.reader.close()  # nothing may follow the result
            except RecordError:
                raise WireError(f"{self.what}: bytes written after the result") from None
        return self.result
