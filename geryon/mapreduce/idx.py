"""`idx [-c [-S SIZE]] [file...]`: every word of the input as a `word 1` line, the map of a
word count; with -c, each word once with its count."""

import os
import subprocess
import sys

from geryon.mapreduce.lines import Indexer, Tally, count_lines, index_lines
from geryon.mapreduce.streams import (SORT_MEMORY, file_arguments, filter_inputs, say,
                                      size_option, usage_error, write_all, write_out)

USAGE = "usage: idx [-c [-S SIZE]] [file...]\n"

HELP = USAGE + """
Write each word of the files (standard input when none are named, or for -) as a line
`word 1`.  A word is a run of ASCII letters, digits and underscores, lower-cased; every
other byte, each byte of a non-ASCII character included, separates words.  Any bytes are
accepted, invalid UTF-8 too.  A file that cannot be read is reported and passed over, and
idx then exits 1.

  -c       count: write each word once, `word N`, in sorted order; exactly what
           `idx FILES | LC_ALL=C sort | agg` writes, made in one process with a
           dictionary (a map that combines its own output)
  -S SIZE  with -c, the memory for distinct words (default 256M); past it idx hands
           its counts and the rest of the words to `agg -s`, and the output is the same

Example, a word count:
  cat notes/* | idx | LC_ALL=C sort | agg
  geryon mapreduce 'idx /n/d?.mbox/*/*/*' agg d0.mbox d1.mbox
  geryon mapreduce 'idx -c /n/d?.mbox/*/*/*' agg d0.mbox d1.mbox
"""


class Counting:
    """idx -c: words counted in a Tally; past its memory, an `agg -s` given the counts so
    far and then every word as a `word 1` line writes the output instead."""

    def __init__(self, limit: int):
        self.tally = Tally(limit)
        self.agg = None

    def add(self, words: list[bytes], nbytes: int) -> None:
        if self.agg is not None:  # an agg that died: SIGPIPE ends us too
            write_all(self.agg.stdin.fileno(), index_lines(words))
        elif words and not self.tally.feed(words, nbytes):
            self._hand_over()

    def _hand_over(self) -> None:
        from geryon.chunkfs.sizes import format_size
        say("idx", f"over {format_size(self.tally.limit)} of distinct words: counting with "
                   "agg -s")
        # -I: the working directory must not stand in for the installed geryon
        self.agg = subprocess.Popen([sys.executable, "-I", "-c",
                                     "from geryon.mapreduce.agg import main; main()", "-s",
                                     "-S", str(self.tally.limit)], stdin=subprocess.PIPE)
        for runs in self.tally.runs():
            write_all(self.agg.stdin.fileno(), count_lines(runs))
        self.tally.counts.clear()

    def finish(self) -> int:
        """Write the counts (or let agg finish them); agg's exit status, or 0."""
        if self.agg is None:
            for runs in self.tally.runs():
                write_out("idx", count_lines(runs))
            return 0
        self.agg.stdin.close()
        status = self.agg.wait()
        if status < 0:  # agg died of a signal (SIGPIPE: our reader went away): so do we
            os.kill(os.getpid(), -status)
        return status


def main(argv: list[str] | None = None) -> None:
    options, args = file_arguments("idx", USAGE, HELP, argv, "cS:")
    if "-S" in options and "-c" not in options:
        usage_error("idx", USAGE, "-S is the memory of -c; give -c too")
    indexer = Indexer()
    if "-c" not in options:
        ok = filter_inputs("idx", args, indexer.feed, indexer.finish)
        sys.exit(0 if ok else 1)
    counting = Counting(size_option("idx", USAGE, options.get("-S"), SORT_MEMORY))

    def feed(chunk: bytes) -> bytes:
        counting.add(indexer.words(chunk), indexer.size)
        return b""

    def end_of_file() -> bytes:
        counting.add(indexer.last_words(), indexer.size)
        return b""

    ok = filter_inputs("idx", args, feed, end_of_file)
    status = counting.finish()
    sys.exit(status or (0 if ok else 1))


if __name__ == "__main__":
    main()
