"""The pure core of idx, agg, mrsort and intermediate: bytes in, bytes out, no I/O.

Theory of operation.  The tools sit in every map and reduce task, so they must never
be a pipeline's bottleneck.  They take input in large blocks and do the per-byte work with
C-speed bytes methods (translate, split, join, itertools.groupby, map); Python code runs
once per run of equal lines (agg) or once per line not seen before (mrsort, intermediate),
never once per character.  Blocks are cut only at a separator
(`Pieces`), so a word or line is never split between blocks however long it is.

Everything here works on bytes and accepts any bytes: invalid UTF-8 is data like any other.
"Blanks" are the ASCII white-space bytes other than newline (space, tab, CR, VT, FF),
the bytes that `bytes.split()` with no argument splits on.
"""

from collections import Counter
from itertools import groupby
from operator import call

BLANKS = b" \t\r\v\f"

# Lines are cached against their partition; the cache is emptied when it reaches this size
# so that input with few repeats cannot grow it without bound (~40 MB at most).
PARTITION_CACHE_LIMIT = 1 << 18


class Pieces:
    """Cuts a stream of chunks into blocks that end at a separator byte.

    `feed` returns the complete pieces so far as one block without its last separator (so
    b"" is one empty piece) or None when the chunk completed no piece; `finish` returns the
    unfinished tail (or None).  A piece longer than any chunk is kept as a list of parts and
    joined once, never copied again and again.
    """

    def __init__(self, sep: bytes = b"\n"):
        self.sep = sep
        self._tail: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes | None:
        cut = chunk.rfind(self.sep)
        if cut < 0:
            if chunk:
                self._tail.append(chunk)
            return None
        head = chunk[:cut]
        if self._tail:
            self._tail.append(head)
            head = b"".join(self._tail)
            self._tail = []
        if cut + 1 < len(chunk):
            self._tail.append(chunk[cut + 1:])
        return head

    def finish(self) -> bytes | None:
        tail = b"".join(self._tail) if self._tail else None
        self._tail = []
        return tail


# ---- idx -------------------------------------------------------------------------------

def _word_table() -> bytes:
    table = bytearray(b"\n" * 256)
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789_":
        table[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[c] = c + 32
    return bytes(table)


# A-Z to a-z, [a-z0-9_] kept, every other byte (all of 0x80-0xff included) a line break.
WORD_TABLE = _word_table()


def index_lines(words: list[bytes]) -> bytes:
    """`word 1` lines, one per word, in order."""
    if not words:
        return b""
    return b" 1\n".join(words) + b" 1\n"


class Indexer:
    """idx over a stream of chunks: `feed` and `finish` return `word 1` lines.

    After the translation no dot is left, so REFERENCE.md's "strips trailing dots" has
    nothing to act on (docs/mapreduce-tools.md says why that is the original's rule read
    literally).  Runs of separators make empty lines, which `split()` drops.
    """

    def __init__(self):
        self._pieces = Pieces(b"\n")
        self.size = 0

    def words(self, chunk: bytes) -> list[bytes]:
        """The words the chunk completes (lower-cased), in order; `size` is then the
        bytes they came from."""
        block = self._pieces.feed(chunk.translate(WORD_TABLE))
        self.size = 0 if block is None else len(block)
        return [] if block is None else block.split()

    def last_words(self) -> list[bytes]:
        """The word the input ended in, if it ended in one (`size` as for words)."""
        tail = self._pieces.finish()
        self.size = 0 if tail is None else len(tail)
        return [] if tail is None else tail.split()

    def feed(self, chunk: bytes) -> bytes:
        return index_lines(self.words(chunk))

    def finish(self) -> bytes:
        return index_lines(self.last_words())


def count_lines(runs: list[tuple[bytes, int]]) -> bytes:
    """`word count` lines of (word, count) runs."""
    return b"".join([b"%s %d\n" % run for run in runs])


# ---- agg -------------------------------------------------------------------------------

def runs_of(lines: list[bytes]) -> list[tuple[bytes, int]]:
    """The runs of equal consecutive lines, as (line, how many)."""
    return [(line, len(list(run))) for line, run in groupby(lines)]


def parse_pair(line: bytes) -> tuple[bytes, bytes, int] | None:
    """(key, key with its separator, count) of a `key count` line, or None if it is not one.

    The count is the last blank-separated field, an optional sign and ASCII digits; the key
    is everything before the blanks in front of it, spaces and tabs included, and must not
    be empty.  Trailing blanks (a CR of CRLF text) are ignored.
    """
    text = line.rstrip(BLANKS)
    fields = text.rsplit(None, 1)
    if len(fields) != 2:
        return None
    count = fields[1]
    digits = count[1:] if count[:1] in (b"+", b"-") else count
    if not digits.isdigit():
        return None
    prefix = text[:len(text) - len(count)]
    key = prefix.rstrip(BLANKS)
    if not key:
        return None
    return key, prefix, int(count)


class Aggregator:
    """agg over blocks of lines: sums the counts of consecutive equal keys.

    A group's output line is its key and separator as first seen, then the total.  A line
    that is not `key count` is left out of the sums, counted in `bad`, and the first one is
    kept (`first_bad`, as line number and line) for the report; it does not end a group.
    """

    def __init__(self):
        self.lineno = 0
        self.bad = 0
        self.first_bad: tuple[int, bytes] | None = None
        self._key: bytes | None = None
        self._prefix = b""
        self._total = 0

    def feed(self, lines: list[bytes]) -> bytes:
        return self.feed_runs(runs_of(lines))

    def feed_runs(self, runs) -> bytes:
        """As feed, given each run of equal lines as (line, how many)."""
        out = []
        for line, n in runs:
            pair = parse_pair(line)
            if pair is None:
                if self.first_bad is None:
                    self.first_bad = (self.lineno + 1, line)
                self.bad += n
            else:
                key, prefix, count = pair
                if key == self._key:
                    self._total += count * n
                else:
                    if self._key is not None:
                        out.append(self._prefix + b"%d\n" % self._total)
                    self._key, self._prefix, self._total = key, prefix, count * n
            self.lineno += n
        return b"".join(out)

    def finish(self) -> bytes:
        if self._key is None:
            return b""
        last = self._prefix + b"%d\n" % self._total
        self._key = None
        return last


# ---- mrsort and agg -s -----------------------------------------------------------------

class Tally:
    """Lines counted as they come, given back as the runs of `LC_ALL=C sort`'s output.

    A map's output repeats itself (a word count's `the 1`, a million times), so counting
    equal lines and sorting only the distinct ones gives sort's exact output for a fraction
    of its work: C collation is bytewise order, which is the order of Python's bytes.  The
    counting is C (`Counter.update` over a block's lines); Python runs once per distinct
    line, at the end.

    `feed` returns False once the distinct lines would take more than `limit` bytes of
    memory; the caller then gives everything to sort(1), `lines()` first.  The size is
    an upper bound kept cheaply: a block that brought new lines adds all its bytes, and
    when the bound passes the limit the distinct lines are measured (in C, once per
    distinct line), so a few long new lines among many old ones are never under-counted.
    """

    PER_LINE = 100  # bytes a distinct line costs beyond its own: the dict slot, the object

    def __init__(self, limit: int):
        self.limit = limit
        self.counts: Counter[bytes] = Counter()
        self.measured = 0   # the distinct lines' size when last measured
        self.since = 0      # at most this much added since

    def feed(self, lines: list[bytes], nbytes: int) -> bool:
        before = len(self.counts)
        self.counts.update(lines)
        new = len(self.counts) - before
        if new:
            self.since += nbytes + new * self.PER_LINE
            if self.measured + self.since > self.limit:
                self.measured = (sum(map(len, self.counts))
                                 + len(self.counts) * self.PER_LINE)
                self.since = 0
        return self.measured + self.since <= self.limit

    def runs(self, per_block: int = 4096):
        """Lists of (line, how many times), in sorted order."""
        counts = self.counts
        ordered = sorted(counts)
        for i in range(0, len(ordered), per_block):
            yield [(line, counts[line]) for line in ordered[i:i + per_block]]

    def lines(self, block: int = 1 << 20):
        """Blocks of newline-ended lines, every line as often as it came, in no order."""
        yield from expand(self.counts.items(), block)


def expand(runs, block: int = 1 << 20):
    """Runs of equal lines, (line, how many), as the newline-ended lines themselves, in
    pieces of about `block` bytes (a line repeated a million times is not one piece)."""
    out, size = [], 0
    for line, n in runs:
        piece = line + b"\n"
        while n:
            k = min(n, max(1, (block - size) // len(piece)))
            out.append(piece * k)
            size += len(piece) * k
            n -= k
            if size >= block:
                yield b"".join(out)
                out, size = [], 0
    if out:
        yield b"".join(out)


# ---- intermediate ----------------------------------------------------------------------

def hash65599(key: bytes) -> int:
    """The original's hash: h = h*65599 + c over the key's characters (Unicode code points
    of its UTF-8, an invalid byte counting as U+FFFD as Inferno's strings had it), 32 bits."""
    chars = key if key.isascii() else [ord(c) for c in key.decode("utf-8", "replace")]
    h = 0
    for c in chars:
        h = (h * 65599 + c) & 0xFFFFFFFF
    return h


def key_of(line: bytes) -> bytes | None:
    """The partitioning key: the part before the first tab when the line has one (as Hadoop
    Streaming does, even if empty), otherwise the first blank-separated field; None for a
    line with neither (empty, or only blanks)."""
    tab = line.find(b"\t")
    if tab >= 0:
        return line[:tab]
    fields = line.split(None, 1)
    return fields[0] if fields else None


def _xxh3_placer(r: int):
    from xxhash import xxh3_64_intdigest  # imported only when used: start-up time

    def place(line: bytes) -> int:
        key = key_of(line)
        return -1 if key is None else xxh3_64_intdigest(key) % r
    return place


def _65599_placer(r: int):
    def place(line: bytes) -> int:
        fields = line.split()
        return (hash65599(fields[0]) & 0x7FFFFFFF) % r if len(fields) == 2 else -1
    return place


# hash name -> (R -> the function from a line to its partition, -1 for none)
HASHES = {"xxh3": _xxh3_placer, "65599": _65599_placer}


class Partitioner:
    """intermediate over blocks of lines: which of R partitions each line goes to.

    `split` returns, per partition, the block's lines that go there, in input order, as
    bytes ready to append (each line ends in a newline).  A line that goes nowhere (no key;
    with `65599`, not exactly two fields) is counted in `left_out` and the first one kept
    (`first_left_out`, as line number and line) for the report.

    The per-line work is all in C: a dict from the whole line to the append method of its
    partition's list, called through map; Python runs only for a line not seen before
    (`_Placements.__missing__`).  The partition is a function of the key, so of the line.
    """

    def __init__(self, partitions: int, hash_name: str = "xxh3"):
        if hash_name not in HASHES:
            raise ValueError(f"unknown hash {hash_name!r}; the hashes are "
                             f"{', '.join(HASHES)}")
        if partitions < 1:
            raise ValueError(f"R must be at least 1, not {partitions}")
        self.partitions = partitions
        self.hash_name = hash_name
        self._buckets: list[list[bytes]] = [[] for _ in range(partitions)]
        self._nowhere: list[bytes] = []
        self._placements = _Placements(HASHES[hash_name](partitions),
                                       [bucket.append for bucket in self._buckets],
                                       self._nowhere.append)
        self.lineno = 0
        self.left_out = 0
        self.first_left_out: tuple[int, bytes] | None = None

    def split(self, lines: list[bytes]) -> list[bytes]:
        any(map(call, map(self._placements.__getitem__, lines), lines))
        out = []
        for bucket in self._buckets:
            if bucket:
                bucket.append(b"")
                out.append(b"\n".join(bucket))
                bucket.clear()
            else:
                out.append(b"")
        nowhere = self._nowhere
        if nowhere:
            if self.first_left_out is None:
                self.first_left_out = (self.lineno + lines.index(nowhere[0]) + 1, nowhere[0])
            self.left_out += len(nowhere)
            nowhere.clear()
        self.lineno += len(lines)
        if len(self._placements) >= PARTITION_CACHE_LIMIT:
            self._placements.clear()
        return out


class _Placements(dict):
    """line -> the append method of the list its partition gathers in (a cache)."""

    def __init__(self, place, appends, nowhere):
        super().__init__()
        self._place = place
        self._appends = appends
        self._nowhere = nowhere

    def __missing__(self, line: bytes):
        p = self._place(line)
        append = self._appends[p] if p >= 0 else self._nowhere
        self[line] = append
        return append
