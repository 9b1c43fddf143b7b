"""`mrsort [-S SIZE] [file...]`: `LC_ALL=C sort`'s output, made by counting equal lines."""

import sys

from geryon.mapreduce.lines import expand
from geryon.mapreduce.streams import (SORT_MEMORY, SortedRuns, file_arguments, size_option,
                                      write_out)

USAGE = "usage: mrsort [-S SIZE] [file...]\n"

HELP = USAGE + """
Write the lines of the files (standard input when none are named, or for -) sorted in C
collation: byte for byte what `LC_ALL=C sort` writes, a newline added to a last line that
has none.  It counts equal lines and sorts only the distinct ones, so on a map's output,
where lines repeat (a word count's `the 1`), it is faster than sort.  Once the distinct
lines would take more than SIZE of memory (default 256M; K, M and G suffixes) it hands
everything to `LC_ALL=C sort`, which spills to $TMPDIR.  An input that cannot be read is
an error, as for sort: mrsort says which, writes nothing and exits 2.

mapreduce sorts with it before a combiner and before each reduce (and runs a combiner or
reduce that is just `agg` as `agg -s`, the two in one).

Example, a word count:
  cat notes/* | idx | mrsort | agg
"""


def main(argv: list[str] | None = None) -> None:
    options, names = file_arguments("mrsort", USAGE, HELP, argv, "S:")
    runs = SortedRuns("mrsort", names, size_option("mrsort", USAGE, options.get("-S"),
                                                   SORT_MEMORY))
    for block in runs:
        for piece in expand(block):
            write_out("mrsort", piece)
    sys.exit(0)


if __name__ == "__main__":
    main()
