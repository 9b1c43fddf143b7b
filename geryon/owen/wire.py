"""What a worker and the scheduler say to each other through `task` and `reconnect`.

Pure, like geryon.owen.records, whose record format it uses for everything but the first
line.  On an open `task`:

  read   the offer (waits until work is assigned): the header
         `<jobuniq>.<jobid>#<n> <deadline-seconds> <attempt-id>\\n`, then the
         description as records:
         `task` (quoted words: jobtype and arguments), `output` (bundle), `keep` (failed
         or all: the work directories to keep), `env` (quoted `TAG value` lines), one
         `file:<name>` per file, `input`, then an empty `end` record; one message that
         may take several reads
  write  (optional) the worker's own id for the attempt, one word; without it the
         attempt is named by the header's attempt id (`stoptask` names it so)
  write  the result, one record named `ok` or `failed` (its data is the output, or for
         a failure the reason and the end of stderr); it may take several writes, and
         the last one returns once the scheduler has kept it
  read   the next offer on the same open file, or
  close  ends the attempt (before a result: the attempt failed)

Owen gave the header alone, took the worker's id, then gave the description; giving
them in one message with an id made by the scheduler, and the next offer on the same
open file, takes a task one write and one read (sent together) instead of six round
trips.

On `reconnect`: write a record `task` holding `<taskid> <worker-id>`, then the result
record as above.
"""

from dataclasses import dataclass

from geryon import quote
from geryon.owen.records import RecordError, RecordReader, format_record


class WireError(RecordError):
    """Bytes on `task` or `reconnect` that break the protocol."""


def format_header(taskid: str, deadline: float, attempt_id: str = "") -> bytes:
    return f"{taskid} {max(1, int(deadline))}{' ' + attempt_id if attempt_id else ''}\n".encode()


def parse_header(data: bytes) -> tuple[str, int, str]:
    """(taskid, deadline, the scheduler's id for the attempt or "")."""
    words = data.decode("utf-8", errors="replace").split()
    if len(words) not in (2, 3) or "#" not in words[0] or not words[1].isdigit():
        raise WireError(f"task: {data[:80]!r} is not a task header "
                        "(`<jobuniq>.<jobid>#<n> <deadline> [<attempt-id>]`)")
    return words[0], int(words[1]), words[2] if len(words) == 3 else ""


@dataclass(frozen=True)
class Description:
    """What a worker is asked to do."""

    jobtype: str
    args: tuple
    env: tuple = ()        # (TAG, value)
    files: tuple = ()      # (name, bytes)
    input: bytes = b""
    output: str = "data"   # or "bundle"
    keep: str = ""         # "failed" or "all": the work directories the worker keeps


KEEP = ("", "failed", "all")


def format_description(spec, output: str = "data", keep: str = "") -> bytes:
    """The description of a TaskSpec (geryon.owen.generators), as records; output
    "bundle" asks for a tar of the task's working directory as its result, keep
    "failed" or "all" for the worker to keep those attempts' working directories."""
    parts = [format_record(quote.join([spec.jobtype, *spec.args]).encode(), "task")]
    if output != "data":
        parts.append(format_record(output.encode(), "output"))
    if keep:
        parts.append(format_record(keep.encode(), "keep"))
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
        self.fields = {"task": None, "env": (), "files": [], "input": b"", "output": "data",
                       "keep": ""}
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
            elif name == "keep":
                if text() not in KEEP[1:]:
                    raise WireError(f"task description: keep {text()[:20]!r} is not "
                                    "failed or all")
                self.fields["keep"] = text()
            elif name == "end":
                if self.fields["task"] is None:
                    raise WireError("task description: it ended before its task record")
                words = self.fields["task"]
                self.description = Description(words[0], tuple(words[1:]),
                                               self.fields["env"], tuple(self.fields["files"]),
                                               self.fields["input"], self.fields["output"],
                                               self.fields["keep"])
            else:
                raise WireError(f"task description: unknown record {name[:40]!r}")
        except UnicodeDecodeError:
            raise WireError(f"task description: record {name!r} is not UTF-8 text") from None


def format_offer(taskid: str, deadline: float, attempt_id: str, description: bytes) -> bytes:
    """What a read of `task` gives: the header, then the description."""
    return format_header(taskid, deadline, attempt_id) + description


class OfferReader:
    """An offer out of bytes fed as they come: feed() gives (taskid, deadline, attempt
    id, Description) once the description's `end` came."""

    def __init__(self, max_bytes: int):
        self.head = b""
        self.header: tuple[str, int, str] | None = None
        self.description = DescriptionReader(max_bytes)

    def feed(self, data: bytes) -> tuple[str, int, str, Description] | None:
        if self.header is None:
            self.head += data
            line, newline, rest = self.head.partition(b"\n")
            if not newline:
                if len(self.head) > 512:
                    raise WireError(f"task: {self.head[:80]!r} is not a task header "
                                    "(`<jobuniq>.<jobid>#<n> <deadline>`)")
                return None
            self.header, data = parse_header(line), rest
        desc = self.description.feed(data)
        return None if desc is None else (*self.header, desc)


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
