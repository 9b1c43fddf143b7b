"""The attrdb text format of Inferno's ndb files, without any I/O: text in, entries out.

Theory of operation.  A file is a sequence of entries.  An entry starts with a line that
begins at column 0 and goes on over every following line that begins with a blank; blank
lines and comment lines do not end it (as in Inferno, where only a line starting with
something other than a blank or `#` starts the next entry).  Each line holds pairs
`attr=value`, `attr=` or a bare `attr` (both with the empty value), separated by blanks.
Outside quotes `#` ends the line.  Either quote character quotes text, a doubled quote
inside stands for itself, and quoted and unquoted text may touch (`a'b c'd` is `ab cd`).

Pairs on the same line bind tighter than pairs elsewhere in the entry: when one pair is
used to find another attribute (`findbyattr`), values on the matching line come first.
That is why an Entry keeps its lines and is not just a list of pairs.

Where we differ from Inferno on purpose: `attr= next` is the empty `attr` followed by a bare
`next` (Inferno reads `attr=next`, or loses `attr`), a second unquoted `=` in a pair is an
error instead of being dropped, and the formatter quotes values holding `#`, `"` or `=` so
that what it writes reads back the same.
"""

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from geryon import quote as words
from geryon.errors import GeryonError

BLANKS = " \t\r"  # separate pairs; '\r' so that files with CRLF line ends read the same
QUOTES = "'\""
SPECIAL = "#\"="  # ndb(6) characters that need quoting beyond what quote.quote does


class NdbError(GeryonError, ValueError):
    """An ndb file or entry that cannot be read or written; says where and how to fix it."""

    def __init__(self, message: str, source: str | None = None, lineno: int | None = None):
        self.source, self.lineno = source, lineno
        where = f"{source}:{lineno}: " if source and lineno else f"{source}: " if source else ""
        super().__init__(where + message)


class Pair(NamedTuple):
    """One attribute and its value; a bare attribute has the value ''."""

    attr: str
    value: str


class Entry(Sequence):
    """An ordered list of Pairs that remembers which pairs shared a line.

    Two entries are equal when their lines are; where they came from does not count.
    """

    __slots__ = ("lines", "source", "lineno", "_pairs")

    def __init__(self, lines: Iterable[Iterable[tuple[str, str]]], source: str | None = None,
                 lineno: int | None = None):
        built = (tuple(Pair(a, v) for a, v in line) for line in lines)
        self.lines = tuple(line for line in built if line)  # an empty line says nothing
        self.source, self.lineno = source, lineno
        self._pairs = tuple(p for line in self.lines for p in line)
        if not self._pairs:
            raise NdbError("an entry needs at least one pair", source, lineno)
        for attr, value in self._pairs:
            if not isinstance(attr, str) or not isinstance(value, str):
                raise NdbError(f"pair ({attr!r}, {value!r}) is not two strings", source, lineno)
            if not attr:
                raise NdbError("a pair has an empty attribute name; give it a name",
                               source, lineno)

    def __getitem__(self, index):
        return self._pairs[index]

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other) -> bool:
        return isinstance(other, Entry) and self.lines == other.lines

    def __hash__(self) -> int:
        return hash(self.lines)

    def __repr__(self) -> str:
        return f"Entry({[list(line) for line in self.lines]!r})"

    def get(self, attr: str, default: str | None = None) -> str | None:
        """The first value of attr in the entry, or default when it has none."""
        return next((v for a, v in self._pairs if a == attr), default)

    def getall(self, attr: str) -> list[str]:
        """Every value of attr, in the order they appear."""
        return [v for a, v in self._pairs if a == attr]

    def has(self, attr: str, value: str | None = None) -> bool:
        """Whether the entry has attr (with exactly this value, when one is given)."""
        return any(a == attr and (value is None or v == value) for a, v in self._pairs)

    def findbyattr(self, attr: str, value: str | None, rattr: str) -> list[str]:
        """Every value of rattr, closest binding first: those on lines holding attr=value
        (or just attr when value is None), then those on the entry's other lines."""
        near: list[str] = []
        far: list[str] = []
        for line in self.lines:
            found = [v for a, v in line if a == rattr]
            if any(a == attr and (value is None or v == value) for a, v in line):
                near.extend(found)
            else:
                far.extend(found)
        return near + far


def quote(word: str) -> str:
    """Write word so that the parser reads it back as one attribute or value."""
    quoted = words.quote(word)
    if quoted == word and any(c in SPECIAL for c in word):
        return "'" + word.replace("'", "''") + "'"
    return quoted


def format_line(entry: Entry) -> str:
    """The entry on one line, as Inferno's ndb/query prints it: `attr=value` for every
    pair, blank-separated, the empty value written ''."""
    return " ".join(f"{quote(a)}={quote(v)}" for a, v in _checked(entry))


def format_entry(entry: Entry) -> str:
    """The entry as it goes in a file: its first line at column 0, each further line
    indented with a tab, bare attributes for empty values, ending in a newline."""
    _checked(entry)
    lines = (" ".join(quote(a) + (f"={quote(v)}" if v else "") for a, v in line)
             for line in entry.lines)
    return "\n\t".join(lines) + "\n"


def _checked(entry: Entry) -> Entry:
    # A line break cannot be written even in quotes: lines are split before quotes are seen.
    for attr, value in entry:
        if "\n" in attr or "\n" in value:
            raise NdbError(f"pair {attr!r}={value!r} holds a line break; ndb attributes and "
                           "values are one line each", entry.source, entry.lineno)
    return entry


def parse(text: str, source: str = "<text>") -> list[Entry]:
    """The entries in text; raises NdbError naming source and line for anything else."""
    entries: list[Entry] = []
    lines: list[list[Pair]] = []
    start = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        pairs = parse_line(line, source, lineno)
        if not pairs:
            continue
        if line[0] not in BLANKS:
            if lines:
                entries.append(Entry(lines, source, start))
            lines, start = [pairs], lineno
        elif lines:
            lines.append(pairs)
        else:
            raise NdbError("indented line before the first entry; start an entry at "
                           "column 0 or remove the indent", source, lineno)
    if lines:
        entries.append(Entry(lines, source, start))
    return entries


def parse_line(line: str, source: str = "<text>", lineno: int = 1) -> list[Pair]:
    """The pairs on one line (no line break in it); comments and blanks give none."""
    pairs: list[Pair] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in BLANKS:
            i += 1
        if i >= n or line[i] == "#":
            return pairs
        pair, i = _read_pair(line, i, source, lineno)
        pairs.append(pair)


def _read_pair(line: str, i: int, source: str, lineno: int) -> tuple[Pair, int]:
    """Read one pair starting at line[i]; return it and the index just past it."""
    start, n = i, len(line)
    parts: list[list[str]] = [[]]  # the attribute's characters, then the value's after '='
    while i < n and line[i] not in BLANKS and line[i] != "#":
        c = line[i]
        if c in QUOTES:
            i = _read_quoted(line, i, parts, source, lineno)
            continue
        if c == "=":
            if len(parts) == 2:
                attr = "".join(parts[0])
                raise NdbError(f"value of {attr!r} holds an unquoted '='; quote the value, "
                               f"as in {attr}='...'", source, lineno)
            parts.append([])
        else:
            parts[-1].append(c)
        i += 1
    attr = "".join(parts[0])
    if not attr:
        raise NdbError(f"pair {line[start:i]!r} has no attribute name; write attr=value",
                       source, lineno)
    return Pair(attr, "".join(parts[1]) if len(parts) == 2 else ""), i


def _read_quoted(line: str, i: int, parts: list[list[str]], source: str, lineno: int) -> int:
    """Append the quoted text starting at line[i] to the current part; return the index
    just past its closing quote."""
    q, n = line[i], len(line)
    i += 1
    while i < n:
        if line[i] == q:
            if i + 1 < n and line[i + 1] == q:
                parts[-1].append(q)
                i += 2
                continue
            return i + 1
        parts[-1].append(line[i])
        i += 1
    where = (f"value of {''.join(parts[0])!r}" if len(parts) == 2
             else "an attribute name")
    raise NdbError(f"unterminated quote in {where}; close the quote", source, lineno)


def find(entries: Iterable[Entry], attr: str, value: str | None = None,
         rattr: str | None = None) -> Iterator[Entry]:
    """The entries that have attr (with this value, when one is given) and, when rattr is
    given, also have rattr: what ndb/query searches for."""
    for entry in entries:
        if entry.has(attr, value) and (rattr is None or entry.has(rattr)):
            yield entry


def database_files(entries: Iterable[Entry]) -> list[str] | None:
    """The `file=` values of the first entry with a `database` attribute, in order, or
    None when there is no such entry (the file is then a database by itself)."""
    for entry in entries:
        if entry.has("database"):
            return entry.getall("file")
    return None
