"""Inferno's quoting of words, the one quoting function of the whole system.

A line is words separated by blanks.  A word that is empty or holds a blank or a quote is
written in single quotes, a quote inside doubled: `it's` -> `'it''s'`.  A quoted part may
touch unquoted characters (`a'b c'd` is one word, `ab cd`), as in Inferno's str->unquoted.
"""

from geryon.errors import GeryonError

BLANKS = " \t\r\n"


class QuoteError(GeryonError, ValueError):
    """Text whose quotes do not balance."""


def quote(word: str) -> str:
    """Quote one word if it needs it, so that split() gives it back unchanged."""
    if word and not any(c in BLANKS or c == "'" for c in word):
        return word
    return "'" + word.replace("'", "''") + "'"


def join(words) -> str:
    """Quote each word and join them with single blanks."""
    return " ".join(quote(w) for w in words)


def split(line: str) -> list[str]:
    """Split a line into words, undoing quote(); unbalanced quotes raise QuoteError."""
    words: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in BLANKS:
            i += 1
        if i >= n:
            return words
        word: list[str] = []
        while i < n and line[i] not in BLANKS:
            if line[i] != "'":
                word.append(line[i])
                i += 1
                continue
            start = i
            i += 1
            while True:
                if i >= n:
                    raise QuoteError(f"unbalanced quote at column {start + 1} in {line[:60]!r}")
                if line[i] == "'":
                    if i + 1 < n and line[i + 1] == "'":
                        word.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                word.append(line[i])
                i += 1
        words.append("".join(word))


def for_terminal(text: str) -> str:
    """Text safe to print on a terminal: control characters (C0, DEL, C1), and format and
    separator characters that hide or reorder text (U+200B, bidi overrides, U+2028), are
    written as Python escapes (\\x1b, \\u200b), so a name shows what it really holds.
    Tabs and newlines are escaped too: one listed name is one line."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)
