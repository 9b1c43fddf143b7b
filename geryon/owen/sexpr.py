"""S-expressions as Inferno's sexprs(6) has them (Rivest's draft of 4 May 1997).

An S-expression is a byte string (an Atom, with an optional display hint) or a list of
S-expressions.  Two forms write them down:

- canonical: `(12:hello world!(5:inner0:))`; every string is raw, `nbytes:bytes`, there is
  no white space, and each expression has exactly one spelling.  canonical() writes it.
- advanced: a superset of canonical for people.  A string may also be a token (letters,
  digits and `-./_:*+=`, not starting with a digit), a quoted string with C escapes
  (`"a\\tb"`, optionally prefixed by its decoded length: `3"a\\tb"`), `#hex#` or
  `|base64|` (both optionally length-prefixed); white space separates list elements; and
  any expression may be written `{base64 of its text}`.  advanced() writes it.

One parser reads both (the canonical form is a subset of the advanced one).  As a
kindness, a bare decimal number (`10`, `5.6`) reads as the string of its digits, so
`(range 10)` means what `(range "10")` does.

Everything here is pure: bytes in, values or SExprError out, and no input can raise any
other error.  The parser keeps its own stack, so deep nesting cannot exhaust Python's;
nesting deeper than MAX_DEPTH (lists and braces together) is refused.
"""

import base64
import binascii
import re
from dataclasses import dataclass

from geryon.errors import GeryonError

MAX_DEPTH = 200          # lists and {braces} inside one another
_MAX_LENGTH_DIGITS = 18  # a length prefix of more digits cannot fit any input we take

WHITESPACE = b" \t\r\n"
_TOKEN_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-./_:*+=")
_DIGITS = frozenset(b"0123456789")
_TOKEN_CHARS = _TOKEN_START | _DIGITS
_TOKEN = re.compile(rb"[-./_:*+=A-Za-z][-./_:*+=A-Za-z0-9]*")
_BARE_NUMBER_END = frozenset(WHITESPACE + b"()[]{}")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
                          + WHITESPACE)
_QUOTED_PLAIN = re.compile(rb'[^"\\]*')

_ESCAPES = {ord("b"): 8, ord("t"): 9, ord("v"): 11, ord("n"): 10, ord("f"): 12, ord("r"): 13,
            ord('"'): ord('"'), ord("'"): ord("'"), ord("\\"): ord("\\")}
_WRITE_ESCAPES = {8: b"\\b", 9: b"\\t", 11: b"\\v", 10: b"\\n", 12: b"\\f", 13: b"\\r",
                  ord('"'): b'\\"', ord("\\"): b"\\\\"}


class SExprError(GeryonError):
    """Bytes that are not an S-expression; the message says what was wrong and where."""

    def __init__(self, offset: int, what: str):
        super().__init__(f"bad S-expression at byte {offset}: {what}")
        self.offset = offset
        self.what = what


@dataclass(frozen=True, slots=True)
class Atom:
    """A byte string, with the display hint it was written with (None if none)."""

    data: bytes
    hint: bytes | None = None

    def text(self) -> str | None:
        """The string as UTF-8 text, or None if it is not UTF-8."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True, slots=True)
class List:
    """A list of S-expressions."""

    items: tuple["Atom | List", ...] = ()

    @property
    def op(self) -> str | None:
        """The first element's text if it is a string (a list's operator), else None."""
        if self.items and isinstance(self.items[0], Atom):
            return self.items[0].text()
        return None

    @property
    def args(self) -> tuple["Atom | List", ...]:
        """The elements after the first."""
        return self.items[1:]


SExpr = Atom | List


def parse(data: bytes) -> SExpr:
    """The one S-expression that data holds, white space around it allowed."""
    return _parse_one(data, 0)


def _parse_one(data: bytes, depth: int) -> SExpr:
    """The one expression of data, inside lists and {braces} `depth` deep."""
    if depth >= MAX_DEPTH:
        raise SExprError(0, f"{{braces}} and lists nested more than {MAX_DEPTH} deep "
                         "(MAX_DEPTH)")
    parser = _Parser(data, depth)
    parser.skip_space()
    if parser.at_end():
        raise SExprError(parser.i, "no S-expression, only white space" if data
                         else "no S-expression, the text is empty")
    value = parser.sexpr()
    parser.skip_space()
    if not parser.at_end():
        raise SExprError(parser.i, f"{_show(data, parser.i)} after the end of the "
                         "S-expression; give exactly one expression")
    return value


def parse_all(data: bytes) -> list[SExpr]:
    """Every S-expression in data, in order, separated by optional white space."""
    parser = _Parser(data, 0)
    values = []
    while True:
        parser.skip_space()
        if parser.at_end():
            return values
        values.append(parser.sexpr())


class _Parser:
    """A cursor over one byte string.  sexpr() reads one expression from the cursor,
    keeping open lists on its own stack."""

    def __init__(self, data: bytes, depth: int):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"S-expressions are parsed from bytes, not {type(data).__name__}")
        self.data = bytes(data)
        self.i = 0
        self.depth = depth

    def at_end(self) -> bool:
        return self.i >= len(self.data)

    def skip_space(self):
        data, n = self.data, len(self.data)
        while self.i < n and data[self.i] in WHITESPACE:
            self.i += 1

    def sexpr(self) -> SExpr:
        data = self.data
        stack: list[tuple[int, list]] = []   # (offset of its '(', its elements so far)
        while True:
            self.skip_space()
            if self.at_end():
                if stack:
                    raise SExprError(self.i, f"the list opened at byte {stack[-1][0]} is "
                                     "not closed; add ')'")
                raise SExprError(self.i, "the text ends where an S-expression should be")
            c = data[self.i]
            if c == ord("("):
                if self.depth + len(stack) >= MAX_DEPTH:
                    raise SExprError(self.i, f"lists nested more than {MAX_DEPTH} deep "
                                     "(MAX_DEPTH)")
                stack.append((self.i, []))
                self.i += 1
                continue
            if c == ord(")"):
                if not stack:
                    raise SExprError(self.i, "')' closes no list")
                self.i += 1
                value: SExpr = List(tuple(stack.pop()[1]))
            elif c == ord("{"):
                value = self.braces(len(stack))
            else:
                value = self.string()
            if not stack:
                return value
            stack[-1][1].append(value)

    def braces(self, open_lists: int) -> SExpr:
        """`{base64}`: the expression whose text the base64 encodes."""
        start = self.i
        end = self.data.find(b"}", start + 1)
        if end < 0:
            raise SExprError(start, "'{' is not closed; add '}'")
        text = self.decode_base64(start, end, "{base64}")
        self.i = end + 1
        try:
            return _parse_one(text, self.depth + open_lists + 1)
        except SExprError as err:
            raise SExprError(start, f"in the {{base64}} expression, at its byte {err.offset}: "
                             f"{err.what}") from None

    def string(self) -> Atom:
        hint = None
        if self.data[self.i] == ord("["):
            start = self.i
            self.i += 1
            self.skip_space()
            hint = self.simple_string()
            self.skip_space()
            if self.at_end() or self.data[self.i] != ord("]"):
                raise SExprError(self.i, f"the display hint opened at byte {start} is not "
                                 "closed; add ']' after its string")
            self.i += 1
            self.skip_space()
            if self.at_end() or self.data[self.i] in b"()[]{":
                raise SExprError(self.i, "a display hint must be followed by the string "
                                 "it describes")
        return Atom(self.simple_string(), hint)

    def simple_string(self) -> bytes:
        data, start = self.data, self.i
        if self.at_end():
            raise SExprError(start, "the text ends where a string should be")
        c = data[start]
        if c in _DIGITS:
            return self.after_digits()
        if c in _TOKEN_START:
            match = _TOKEN.match(data, start)
            self.i = match.end()
            return match.group()
        if c == ord('"'):
            return self.quoted(None)
        if c == ord("|"):
            return self.base64(None)
        if c == ord("#"):
            return self.hex(None)
        raise SExprError(start, f"{_show(data, start)} cannot start a string; quote it "
                         "(\"...\") or write it as #hex#")

    def after_digits(self) -> bytes:
        """A length prefix and what it measures, or a bare decimal number."""
        data, start = self.data, self.i
        end = start
        while end < len(data) and data[end] in _DIGITS:
            end += 1
        following = data[end] if end < len(data) else None
        if following is not None and following in b':"|#':
            digits = data[start:end]
            if len(digits) > 1 and digits[0] == ord("0"):
                raise SExprError(start, f"the length {digits.decode()} has a leading zero")
            if len(digits) > _MAX_LENGTH_DIGITS:
                raise SExprError(start, f"the length {digits[:24].decode()}... is too long")
            length = int(digits)
            self.i = end
            if following == ord(":"):
                return self.raw(length)
            if following == ord('"'):
                return self.quoted(length)
            if following == ord("|"):
                return self.base64(length)
            return self.hex(length)
        # A bare decimal number (a kindness: the grammar wants it quoted).
        if following == ord(".") and end + 1 < len(data) and data[end + 1] in _DIGITS:
            end += 1
            while end < len(data) and data[end] in _DIGITS:
                end += 1
        if end < len(data) and data[end] not in _BARE_NUMBER_END:
            raise SExprError(start, f"{_show(data, end)} after the digits "
                             f"{data[start:end][:20].decode()}: a token cannot start with a "
                             "digit; quote it (\"...\")")
        self.i = end
        return data[start:end]

    def raw(self, length: int) -> bytes:
        start = self.i + 1                      # after the ':'
        if length > len(self.data) - start:
            raise SExprError(self.i, f"the raw string says {length} bytes but only "
                             f"{len(self.data) - start} follow")
        self.i = start + length
        return self.data[start:self.i]

    def quoted(self, length: int | None) -> bytes:
        data, open_at = self.data, self.i
        out = bytearray()
        i = open_at + 1
        n = len(data)
        while True:
            plain = _QUOTED_PLAIN.match(data, i)
            out += plain.group()
            i = plain.end()
            if i >= n:
                raise SExprError(open_at, "the quoted string is not closed; add '\"'")
            if data[i] == ord('"'):
                i += 1
                break
            i += 1                              # a backslash
            if i >= n:
                raise SExprError(open_at, "the quoted string is not closed; add '\"'")
            e = data[i]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 1
            elif e in b"01234567":
                digits = data[i:i + 3]
                if len(digits) < 3 or any(d not in b"01234567" for d in digits) \
                        or int(digits, 8) > 0o377:
                    raise SExprError(i - 1, "an octal escape needs three octal digits, "
                                     "\\000 to \\377")
                out.append(int(digits, 8))
                i += 3
            elif e == ord("x"):
                digits = data[i + 1:i + 3]
                if len(digits) < 2 or any(d not in _HEX for d in digits):
                    raise SExprError(i - 1, "a hex escape needs two hex digits, \\x00 to \\xff")
                out.append(int(digits, 16))
                i += 3
            elif e in b"\r\n":                  # a line continued: the break is dropped
                i += 1
                if i < n and data[i] in b"\r\n" and data[i] != e:
                    i += 1
            else:
                raise SExprError(i - 1, f"unknown escape \\{_char(e)} in a quoted string; "
                                 "write a backslash as \\\\")
        self.i = i
        return self.check_length(length, bytes(out), open_at, "quoted string")

    def base64(self, length: int | None) -> bytes:
        start = self.i
        end = self.data.find(b"|", start + 1)
        if end < 0:
            raise SExprError(start, "'|' (base64) is not closed; add '|'")
        value = self.decode_base64(start, end, "|base64|")
        self.i = end + 1
        return self.check_length(length, value, start, "base64 string")

    def hex(self, length: int | None) -> bytes:
        start = self.i
        end = self.data.find(b"#", start + 1)
        if end < 0:
            raise SExprError(start, "'#' (hex) is not closed; add '#'")
        digits = bytearray()
        for i in range(start + 1, end):
            c = self.data[i]
            if c in _HEX:
                digits.append(c)
            elif c not in WHITESPACE:
                raise SExprError(i, f"{_show(self.data, i)} in #hex#; only hex digits and "
                                 "white space may be there")
        if len(digits) % 2:
            raise SExprError(start, f"#hex# has an odd number of digits ({len(digits)})")
        self.i = end + 1
        return self.check_length(length, bytes.fromhex(digits.decode()), start, "hex string")

    def decode_base64(self, start: int, end: int, what: str) -> bytes:
        """The bytes base64 text between the delimiters at start and end stands for."""
        text = bytes(c for c in self.data[start + 1:end] if c not in WHITESPACE)
        if _BASE64_TEXT.fullmatch(text) is None:
            bad = next((i for i in range(start + 1, end) if self.data[i] not in _BASE64_CHARS),
                       None)
            if bad is None:
                raise SExprError(start, f"'=' in the middle of {what}; it may only pad the end")
            raise SExprError(bad, f"{_show(self.data, bad)} in {what}; only base64 "
                             "characters and white space may be there")
        text += b"=" * (-len(text) % 4)         # a kindness: padding may be left off
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            raise SExprError(start, f"{what} does not decode: {len(text.rstrip(b'='))} "
                             "base64 characters cannot make whole bytes") from None

    @staticmethod
    def check_length(length: int | None, value: bytes, start: int, what: str) -> bytes:
        if length is not None and length != len(value):
            raise SExprError(start, f"the {what} is {len(value)} bytes but its length "
                             f"prefix says {length}")
        return value


def canonical(x: SExpr) -> bytes:
    """x in canonical form: the one spelling used for exchange and signing."""
    out = bytearray()
    _write(x, out, _canonical_string, b"")
    return bytes(out)


def advanced(x: SExpr) -> bytes:
    """x in advanced form, for people: tokens where it can, quoted text where the bytes are
    printable UTF-8, else #hex# (short) or |base64|; one line, elements separated by a
    blank."""
    out = bytearray()
    _write(x, out, _advanced_string, b" ")
    return bytes(out)


def _write(x: SExpr, out: bytearray, string, separator: bytes):
    # An explicit stack of (list's items, next index) so deep lists format too.
    if isinstance(x, Atom):
        _write_atom(x, out, string)
        return
    stack = [(x.items, 0)]
    out += b"("
    while stack:
        items, k = stack.pop()
        if k == len(items):
            out += b")"
            continue
        if k:
            out += separator
        stack.append((items, k + 1))
        item = items[k]
        if isinstance(item, Atom):
            _write_atom(item, out, string)
        elif isinstance(item, List):
            out += b"("
            stack.append((item.items, 0))
        else:
            raise TypeError(f"not an S-expression: {item!r}")


def _write_atom(atom: Atom, out: bytearray, string):
    if atom.hint is not None:
        out += b"[" + string(atom.hint) + b"]"
    out += string(atom.data)


def _canonical_string(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data


def _advanced_string(data: bytes) -> bytes:
    if _TOKEN.fullmatch(data):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\t\n\r" for c in text):
        out = bytearray(b'"')
        for byte in data:
            out += _WRITE_ESCAPES.get(byte, bytes((byte,)))
        return bytes(out + b'"')
    if len(data) <= 16:
        return b"#" + data.hex().encode() + b"#"
    return b"|" + base64.b64encode(data) + b"|"


def _char(c: int) -> str:
    return chr(c) if 0x21 <= c < 0x7f else f"\\x{c:02x}"


def _show(data: bytes, i: int) -> str:
    """The byte at i, for a message."""
    if i >= len(data):
        return "the end of the text"
    c = data[i]
    if 0x21 <= c < 0x7f:
        return f"'{chr(c)}'"
    return f"byte 0x{c:02x}"
