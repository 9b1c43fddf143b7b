"""`agg [file...]`: the total of each run of equal keys in sorted `key count` lines."""

import sys

from geryon.mapreduce.lines import Aggregator, Pieces
from geryon.mapreduce.streams import file_arguments, filter_inputs, say, shown, write_out

USAGE = "usage: agg [file...]\n"

HELP = USAGE + """
Read `key count` lines sorted (or at least grouped) by key, from the files or standard
input, and write `key total` for each run of consecutive equal keys.  The count is the last
field, an integer; the key is everything before it, blanks inside included, and keeps the
separator (space or tab) of its first line.  A line that is not `key count` is left out of
the sums and counted; agg then reports how many (and the first) and exits 1, so that wrong
totals never pass for right ones.

Example, a word count:
  cat notes/* | idx | LC_ALL=C sort | agg
"""


def main(argv: list[str] | None = None) -> None:
    args = file_arguments("agg", USAGE, HELP, argv)
    agg = Aggregator()
    pieces = Pieces(b"\n")

    def feed(chunk: bytes) -> bytes:
        block = pieces.feed(chunk)
        return b"" if block is None else agg.feed(block.split(b"\n"))

    def end_of_file() -> bytes:
        tail = pieces.finish()
        return b"" if tail is None else agg.feed([tail])

    ok = filter_inputs("agg", args, feed, end_of_file)
    write_out("agg", agg.finish())
    if agg.bad:
        lineno, line = agg.first_bad
        say("agg", f"{agg.bad} line{'s' if agg.bad != 1 else ''} not `key count` left out "
                   f"of the sums (first: line {lineno}: {shown(line)})")
    sys.exit(0 if ok and not agg.bad else 1)


if __name__ == "__main__":
    main()
