"""`idx [file...]`: every word of the input as a `word 1` line, the map of a word count."""

import sys

from geryon.mapreduce.lines import Indexer
from geryon.mapreduce.streams import file_arguments, filter_inputs

USAGE = "usage: idx [file...]\n"

HELP = USAGE + """
Write each word of the files (standard input when none are named, or for -) as a line
`word 1`.  A word is a run of ASCII letters, digits and underscores, lower-cased; every
other byte, each byte of a non-ASCII character included, separates words.  Any bytes are
accepted, invalid UTF-8 too.  A file that cannot be read is reported and passed over, and
idx then exits 1.

Example, a word count:
  cat notes/* | idx | LC_ALL=C sort | agg
  geryon mapreduce 'idx /n/d?.mbox/*/*/*' agg d0.mbox d1.mbox
"""


def main(argv: list[str] | None = None) -> None:
    _, args = file_arguments("idx", USAGE, HELP, argv)
    indexer = Indexer()
    ok = filter_inputs("idx", args, indexer.feed, indexer.finish)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
