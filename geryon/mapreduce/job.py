"""What a mapreduce job is, with no I/O: its spec, the names of its files, the shell
blocks its tasks run, and the Hadoop Streaming reporter lines they write on stderr.

Theory of operation.  A job is caerwyn's: one map per input disk, piped into
`intermediate` (R partition files on the cpu's output disk); then one reduce per partition
that gathers that partition from every map's output disk, sorts it in C collation, reduces
it and writes a part file.  Every attempt of every task writes under a name of its own,

    $cpudisk/JOB/map/m<k>.a<n>.p<r>     map k, attempt n, partition r
    $cpudisk/JOB/part<r>.a<n>           reduce r, attempt n

and a cpu keeps what a block wrote only when it exits 0, in one transaction, so a failed,
killed or timed-out attempt leaves nothing, and of several attempts that succeed the
driver uses exactly one, the first, and removes the others' files at the end.  The blocks
report sizes with reporter lines the driver reads from their stderr.
"""

import re
import secrets
import shlex
import time
from dataclasses import asdict, dataclass, field

from geryon.errors import GeryonError
from geryon.rcpu.block import normalise
from geryon.registry.lines import value_text

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PARTITIONS_MAX = 1000
GERYON = "geryon"  # the counter group of the blocks' own reporter lines


class JobError(GeryonError):
    """A job that cannot be run as asked, or that failed."""


def check_job_name(name: str) -> str:
    if not NAME.match(name):
        raise JobError(f"job name {name!r}: use up to 64 letters, digits, '.', '_' and '-', "
                       "starting with a letter or digit")
    return name


def new_job_name(now: float | None = None) -> str:
    """A fresh job name: the time it was made and a little randomness."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now or time.time()))
    return f"mr-{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class JobSpec:
    """A job as asked for: blocks, input disks and the rules its tasks run by."""

    name: str
    map: str
    reduce: str
    disks: tuple[str, ...]
    partitions: int
    combiner: str = ""
    hash: str = "xxh3"          # intermediate's --hash
    timeout: float = 0.0        # seconds an attempt may run; 0: no limit
    attempts: int = 4           # failures of one task that fail the job
    slots: int = 0              # tasks at once on one cpu; 0: its ncpu
    backups: bool = True        # speculative attempts for stragglers
    created: float = field(default_factory=time.time)

    def __post_init__(self):
        check_job_name(self.name)
        if not self.disks:
            raise JobError("give at least one input disk, e.g. d0.mbox")
        if len(set(self.disks)) != len(self.disks):
            raise JobError("an input disk is named twice; name each once")
        if not 1 <= self.partitions <= PARTITIONS_MAX:
            raise JobError(f"-R {self.partitions}: the number of partitions must be 1 to "
                           f"{PARTITIONS_MAX}")
        if self.attempts < 1:
            raise JobError(f"--attempts {self.attempts}: a task needs at least one attempt")
        if self.timeout < 0 or self.slots < 0:
            raise JobError("--timeout and --slots must not be negative")
        if self.hash not in ("xxh3", "65599"):
            raise JobError(f"--hash {self.hash}: the hashes are xxh3 and 65599")
        for block in (self.map, self.reduce, *([self.combiner] if self.combiner else [])):
            normalise(block)  # BlockError (ours) for an empty or oversized block

    def to_dict(self) -> dict:
        return {**asdict(self), "disks": list(self.disks)}

    @classmethod
    def from_dict(cls, data: dict) -> "JobSpec":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "disks": tuple(known.get("disks", ()))})


# ---- names of the files a job writes -------------------------------------------------

def map_prefix(job: str, task: int, attempt: int) -> str:
    """The prefix of one map attempt's partition files, relative to its output disk."""
    return f"{job}/map/m{task}.a{attempt}.p"


def part_path(job: str, partition: int, attempt: int) -> str:
    return f"{job}/part{partition}.a{attempt}"


# ---- the blocks ------------------------------------------------------------------------

def _user(block: str) -> str:
    """A user's block as one command of a pipeline: a subshell, so its `exit` ends it."""
    return "(\n" + normalise(block) + "\n)"


def sorted_into(block: str, files: str = "") -> str:
    """A combiner or reduce given its input sorted in C collation (of the files, or of
    stdin): `mrsort | BLOCK`, or for a block that is just `agg`, `agg -s`, which writes
    exactly what `LC_ALL=C sort | agg` does, in one process."""
    if normalise(block) == "agg":
        return f"agg -s {files}".rstrip()
    return f"mrsort {files}".rstrip() + " | " + _user(block)


def map_block(spec: JobSpec, task: int, attempt: int) -> str:
    """Map k's attempt n: the map (and combiner) into intermediate, then a report of its
    input and of each partition's size."""
    q = shlex.quote
    disk = q(f"/n/{spec.disks[task]}")
    prefix = '"$cpudisk"/' + q(map_prefix(spec.name, task, attempt))
    stages = [_user(spec.map)]
    if spec.combiner:
        stages.append(sorted_into(spec.combiner))
    stages.append(f"intermediate --hash {spec.hash} {spec.partitions} {prefix}")
    return "\n".join([
        "set -o pipefail",
        'mkdir -p "$cpudisk"/' + q(f"{spec.name}/map") + " || exit 1",
        f"find {disk}/ -type f -printf '%s\\n' | awk '{{s += $1}} END {{printf "
        f"\"reporter:counter:{GERYON},map input bytes,%d\\n\", s}}' >&2",
        " | ".join(stages) + " || exit $?",
        f"printf 'geryon:partitions %s\\n' \"$(stat -c %s {prefix}"
        f"{{0..{spec.partitions - 1}}} | tr '\\n' ' ')\" >&2",
    ]) + "\n"


def reduce_block(spec: JobSpec, partition: int, attempt: int,
                 inputs: list[tuple[str, str]]) -> str:
    """Reduce r's attempt n over (disk, map prefix) of every map's winning attempt."""
    q = shlex.quote
    files = " ".join(q(f"/n/{disk}/{prefix}{partition}") for disk, prefix in inputs)
    out = '"$cpudisk"/' + q(part_path(spec.name, partition, attempt))
    return "\n".join([
        "set -o pipefail",
        'mkdir -p "$cpudisk"/' + q(spec.name) + " || exit 1",
        f"{sorted_into(spec.reduce, files)} > {out} || exit $?",
        f"printf 'reporter:counter:{GERYON},reduce output bytes,%s\\n' "
        f'"$(stat -c %s {out})" >&2',
    ]) + "\n"


def copy_block(path: str, size: int) -> str:
    """Store stdin, a part of `size` bytes, at path on the output disk: the copy that lets a
    job's result outlive the node that made it.  A short copy is not kept."""
    q = shlex.quote
    out = '"$cpudisk"/' + q(path)
    return "\n".join([
        'mkdir -p "$(dirname ' + out + ')" || exit 1',
        f"cat > {out} || exit 1",
        f'test "$(stat -c %s {out})" = {int(size)} || '
        "{ echo 'the copy came short' >&2; exit 1; }",
    ]) + "\n"


def cleanup_block(job: str, remove: list[str], everything: bool) -> str:
    """Remove a job's files from one output disk: its map outputs and the given paths
    (spare attempts' parts), or, with everything, the job's whole directory."""
    q = shlex.quote
    if everything:
        return f'rm -rf "$cpudisk"/{q(job)}\n'
    paths = " ".join('"$cpudisk"/' + q(p) for p in [f"{job}/map", *remove])
    return f"rm -rf {paths}\n"


# ---- what the blocks report ------------------------------------------------------------

COUNTER = re.compile(rb"^reporter:counter:([^,\n]*),([^,\n]*),(-?\d+)\s*$")
STATUS = re.compile(rb"^reporter:status:(.*?)\s*$")
PARTITIONS = re.compile(rb"^geryon:partitions((?: \d+)*) ?$")
COUNT_DIGITS = 1000  # a longer count is no counter (and int() refuses 4300 digits)


class Reporter:
    """Reads an attempt's stderr as it comes: Hadoop Streaming's `reporter:counter:GROUP,
    NAME,N` (summed) and `reporter:status:MESSAGE` (the last kept), our own partition
    sizes, and the tail of everything else for a failure's message."""

    TAIL = 8192

    def __init__(self):
        self.counters: dict[tuple[str, str], int] = {}
        self.status = ""
        self.status_at = 0.0  # when the status came (monotonic): the latest is shown
        self.sizes: list[int] = []
        self._partial = b""
        self._other = bytearray()

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > self.TAIL:  # a line that never ends is not a report
            self._keep(self._partial[:len(self._partial) - self.TAIL // 2])
            self._partial = self._partial[-(self.TAIL // 2):]
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, line: bytes) -> None:
        if (m := COUNTER.match(line)) and len(m[3]) <= COUNT_DIGITS:
            key = (m[1].decode(errors="replace"), m[2].decode(errors="replace"))
            self.counters[key] = self.counters.get(key, 0) + int(m[3])
        elif m := STATUS.match(line):
            # shown on a terminal and in the registry: no control characters
            self.status = value_text(m[1].decode(errors="replace")[:200]).strip()
            self.status_at = time.monotonic()
        elif m := PARTITIONS.match(line):
            self.sizes = [int(w) for w in m[1].split()]
        else:
            self._keep(line + b"\n")

    def _keep(self, data: bytes) -> None:
        self._other += data
        if len(self._other) > 2 * self.TAIL:
            del self._other[:len(self._other) - self.TAIL]

    @property
    def stderr(self) -> str:
        """What the attempt said other than reports, its last few KiB."""
        return bytes(self._other[-self.TAIL:]).decode(errors="replace")

    # file-like, so that rcpu can stream a block's stderr into it
    def write(self, data: bytes) -> int:
        self.feed(data)
        return len(data)

    def flush(self) -> None:
        pass


def add_counters(total: dict, more: dict) -> dict:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value
    return total
