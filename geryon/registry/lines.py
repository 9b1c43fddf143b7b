"""The registry's text: one formatter and one parser for service lines and event lines.

A service line is `name attr value attr value ...`, each word quoted by geryon.quote only
if it needs it.  An event line is one change, `SEQ add LINE`, `SEQ update LINE`,
`SEQ remove NAME` or `SEQ reset`.  On the wire both come as UTF-8 lines ending in a
newline; LineReader takes the bytes in pieces of any size (as they arrive from SFTP reads)
and hands out one parsed line at a time, as h11's readers do.

Everything here is pure: text in, values or RegistryError out.  Whatever the input, the
only error raised is RegistryError, so a server can answer any garbage with it.
"""

import re
import unicodedata
from dataclasses import dataclass

from geryon import quote
from geryon.errors import NsError

RESERVED = ("new", "index", "find", "event")
EVENT_OPS = ("add", "update", "remove", "reset")

# Characters no word may hold: C0 and C1 controls, DEL, and the separators that
# str.splitlines() breaks lines at, so that one entry is always one line on every reader.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What else a name may not hold, in ASCII: blanks and '/' (a name is a file name too).
_NAME_ASCII = re.compile("[\x00-\x20\x7f/]")


class RegistryError(NsError):
    """A request or a text the registry refuses; the message starts with Inferno's error
    text where it has one."""


def value_text(text: str) -> str:
    """text as an attribute value may hold it: each control character made a space."""
    return _CONTROL.sub(" ", text)


def check_name(name: str) -> str:
    """name, if it may name a service; else RegistryError."""
    if _NAME_ASCII.search(name) or (not name.isascii() and not _printable(name)):
        raise RegistryError(f"bad character in service name {name!r}; names may not hold "
                            "control characters, spaces or '/'")
    if name in RESERVED or name in ("", ".", ".."):
        raise RegistryError(f"bad service name {name!r}; it may not be empty, . or .., or "
                            f"one of {', '.join(RESERVED)}")
    return name


def _printable(name: str) -> bool:
    """No control, format (zero-width, bidirectional) or separator character: a name
    prints as what it is."""
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Cs")
                   for c in name)


def words_of(data: bytes, what: str) -> list[str]:
    """The words of a UTF-8 text (RegistryError if it is not UTF-8 or a quote is open)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RegistryError(f"{what} is not UTF-8 text") from None
    return split(text, what)


def split(text: str, what: str) -> list[str]:
    try:
        return quote.split(text)
    except quote.QuoteError as err:
        raise RegistryError(f"{what}: {err}") from None


def parse_pairs(words: list[str], what: str) -> list[tuple[str, str]]:
    """Attribute/value pairs from words, checked."""
    if len(words) % 2:
        raise RegistryError(f"odd attribute/value pairs in {what}: {quote.join(words)[:80]}; "
                            "give every attribute a value")
    pairs = list(zip(words[0::2], words[1::2]))
    for attr, value in pairs:
        if not attr or _CONTROL.search(attr) or _CONTROL.search(value):
            raise RegistryError(f"bad attribute {attr!r} in {what}: attributes must be "
                                "non-empty and neither may hold control characters")
    return pairs


def format_pairs(attrs) -> str:
    """`attr value ...` for a dict or a sequence of pairs (an update, a find filter)."""
    items = attrs.items() if isinstance(attrs, dict) else attrs
    return quote.join(w for kv in items for w in kv)


def format_service(name: str, attrs) -> str:
    """The one line of a service, without its newline."""
    pairs = format_pairs(attrs)
    return f"{quote.quote(name)} {pairs}" if pairs else quote.quote(name)


def parse_words(words: list[str], what: str) -> tuple[str, dict]:
    if not words:
        raise RegistryError(f"bad service name ''; write `name attr value ...` in {what}")
    name = check_name(words[0])
    return name, dict(parse_pairs(words[1:], f"{what} of {name}"))


def parse_service(line: str, what: str = "service line") -> tuple[str, dict]:
    """(name, attrs) from one service line; an attribute given twice keeps its last value."""
    return parse_words(split(line, what), what)


@dataclass(frozen=True)
class Change:
    """One change to the registry.  op is add, update, remove or reset; line is the
    service's line after the change (add, update), its quoted name (remove) or empty."""

    seq: int
    op: str
    name: str
    line: str

    def text(self) -> str:
        """The event line, with its newline."""
        return format_event(self) + "\n"


def format_event(change: Change) -> str:
    if change.op == "reset":
        return f"{change.seq} reset"
    return f"{change.seq} {change.op} {change.line}"


def parse_event(line: str) -> Change:
    """A Change from one event line."""
    seq, _, rest = line.partition(" ")
    op, _, body = rest.partition(" ")
    if not (seq.isascii() and seq.isdigit()):
        raise RegistryError(f"bad event line {line[:80]!r}: it must start with a change "
                            "number (`SEQ op ...`)")
    if op not in EVENT_OPS:
        raise RegistryError(f"bad event line {line[:80]!r}: unknown change {op[:20]!r}; "
                            f"known: {', '.join(EVENT_OPS)}")
    if op == "reset":
        if body or rest != "reset":
            raise RegistryError(f"bad event line {line[:80]!r}: nothing may follow reset")
        return Change(int(seq), op, "", "")
    if op == "remove":
        words = split(body, "event line")
        if len(words) != 1:
            raise RegistryError(f"bad event line {line[:80]!r}: remove names one service")
        return Change(int(seq), op, check_name(words[0]), body)
    name, _ = parse_service(body, "event line")
    return Change(int(seq), op, name, body)


class LineReader:
    """Parsed lines out of bytes that arrive in pieces: feed() what came, then take
    next() until it gives None (no whole line yet); close() at the end of the input."""

    def __init__(self, parse, what: str, max_line: int | None = None):
        self.parse = parse  # callable(str) -> item, raising RegistryError
        self.what = what
        self.max_line = max_line
        self.buffer = bytearray()
        self.start = 0  # where the next line begins in buffer

    def feed(self, data: bytes) -> None:
        if self.start:
            del self.buffer[:self.start]
            self.start = 0
        self.buffer += data

    def next(self):
        """The next whole line parsed, or None; a bad line raises (and is passed over)."""
        end = self.buffer.find(b"\n", self.start)
        if end < 0:
            waiting = len(self.buffer) - self.start
            if self.max_line is not None and waiting > self.max_line:
                raise RegistryError(f"{self.what}: a line longer than {self.max_line} bytes")
            return None
        raw, self.start = bytes(self.buffer[self.start:end]), end + 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RegistryError(f"{self.what}: a line that is not UTF-8 text: "
                                f"{raw[:60]!r}") from None
        return self.parse(text)

    def close(self) -> None:
        """The input has ended: anything left is a line cut short."""
        left = bytes(self.buffer[self.start:])
        if left:
            raise RegistryError(f"{self.what} ends in the middle of a line: {left[:60]!r}")


def read_all(data: bytes, parse, what: str) -> list:
    """Every line of a whole text, parsed."""
    reader = LineReader(parse, what)
    reader.feed(data)
    items = []
    while (item := reader.next()) is not None:
        items.append(item)
    reader.close()
    return items


def read_services(data: bytes) -> list[tuple[str, dict]]:
    """(name, attrs) of every line of an `index` or `find` answer."""
    return read_all(data, parse_service, "registry answer")


def read_events(data: bytes) -> list[Change]:
    """The Changes of a whole `event` text."""
    return read_all(data, parse_event, "event text")
