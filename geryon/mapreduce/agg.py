"""`agg [-s [-S SIZE]] [file...]`: the total of each run of equal keys in sorted
`key count` lines."""

import sys

from geryon.mapreduce.lines import Aggregator, Pieces
from geryon.mapreduce.streams import (SORT_MEMORY, SortedRuns, file_arguments, filter_inputs,
                                      say, shown, size_option, usage_error, write_out)

USAGE = "usage: agg [-s [-S SIZE]] [file...]\n"

HELP = USAGE + """
Read `key count` lines sorted (or at least grouped) by key, from the files or standard
input, and write `key total` for each run of consecutive equal keys.  The count is the last
field, an integer; the key is everything before it, blanks inside included, and keeps the
separator (space or tab) of its first line.  A line that is not `key count` is left out of
the sums and counted; agg then reports how many (and the first) and exits 1, so that wrong
totals never pass for right ones.

  -s       sort the input first: `agg -s FILES` writes exactly what
           `LC_ALL=C sort FILES | agg` does, in one process and faster, by counting
           equal lines (as mrsort does; mapreduce runs a combiner or reduce that is
           just `agg` this way); an input that cannot be read is an error, as for
           sort: nothing is written and the status is 2
  -S SIZE  with -s, the memory for distinct lines before it sorts with sort(1)
           instead (default 256M)

Example, a word count:
  cat notes/* | idx | LC_ALL=C sort | agg
  idx notes/* | agg -s
"""


def main(argv: list[str] | None = None) -> None:
    options, names = file_arguments("agg", USAGE, HELP, argv, "sS:")
    if "-S" in options and "-s" not in options:
        usage_error("agg", USAGE, "-S is the memory of -s; give -s too")
    agg = Aggregator()
    ok = True
    if "-s" in options:  # an input that cannot be read ends it (exit 2), as it ends sort
        for block in SortedRuns("agg", names, size_option("agg", USAGE, options.get("-S"),
                                                          SORT_MEMORY)):
            write_out("agg", agg.feed_runs(block))
    else:
        pieces = Pieces(b"\n")

        def feed(chunk: bytes) -> bytes:
            block = pieces.feed(chunk)
            return b"" if block is None else agg.feed(block.split(b"\n"))

        def end_of_file() -> bytes:
            tail = pieces.finish()
            return b"" if tail is None else agg.feed([tail])

        ok = filter_inputs("agg", names, feed, end_of_file)
    write_out("agg", agg.finish())
    if agg.bad:
        lineno, line = agg.first_bad
        say("agg", f"{agg.bad} line{'s' if agg.bad != 1 else ''} not `key count` left out "
                   f"of the sums (first: line {lineno}: {shown(line)})")
    sys.exit(0 if ok and not agg.bad else 1)


if __name__ == "__main__":
    main()
