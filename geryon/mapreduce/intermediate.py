"""`intermediate [--hash 65599|xxh3] R prefix`: lines hashed by key into R partition files."""

import os
import sys

from geryon.mapreduce.lines import HASHES, Partitioner, Pieces
from geryon.mapreduce.streams import chunks, say, shown, start, usage_error, write_all

USAGE = "usage: intermediate [--hash 65599|xxh3] R prefix\n"

HELP = USAGE + """
Read lines from standard input and write each to one of R files prefix0 .. prefix{R-1}
(all created, even those left empty), chosen by a hash of the line's key, so that every
line with the same key lands in the same file.

  --hash xxh3   (the default) xxh3_64 of the key % R.  The key is the part before the
                first tab when the line has one (as Hadoop Streaming has it), otherwise
                its first blank-separated field.  A line with neither (empty, or only
                blanks) goes to no file; how many is reported on stderr.
  --hash 65599  caerwyn's original: keeps only lines of exactly two fields, partition
                (h & 0x7fffffff) % R with h = h*65599 + c over the key's characters,
                32 bits.  How many lines were left out is reported on stderr.

Reports end with a counter line for the mapreduce driver,
`reporter:counter:intermediate,lines left out,N`.  A write error (disk full) exits 1.

Example, the map side of a word count with 5 reduces:
  idx /n/d0.mbox/*/*/* | intermediate 5 $cpudisk/job1.0.inter
"""


def parse_args(args: list[str]) -> tuple[str, int, str]:
    """(hash name, R, prefix) from the command line; a mistake exits 2 with the usage."""
    hash_name = "xxh3"
    rest = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            sys.stdout.write(HELP)
            sys.exit(0)
        if arg == "--":
            rest.extend(args[i + 1:])
            break
        if arg == "--hash" or arg.startswith("--hash="):
            if arg == "--hash":
                i += 1
                if i == len(args):
                    usage_error("intermediate", USAGE, "--hash needs a value: 65599 or xxh3")
                hash_name = args[i]
            else:
                hash_name = arg.split("=", 1)[1]
            if hash_name not in HASHES:
                usage_error("intermediate", USAGE, f"unknown hash {hash_name!r}; "
                            f"the hashes are {' and '.join(sorted(HASHES))}")
        elif arg.startswith("-") and len(arg) > 1 and not arg[1:].isdigit():
            usage_error("intermediate", USAGE, f"unknown option {arg}")
        else:
            rest.append(arg)
        i += 1
    if len(rest) != 2:
        usage_error("intermediate", USAGE, "give the number of partitions R and a prefix")
    count, prefix = rest
    if not count.isdigit() or int(count) < 1:
        usage_error("intermediate", USAGE,
                    f"R must be a whole number of partitions, 1 or more, not {count!r}")
    if not prefix:
        usage_error("intermediate", USAGE, "the prefix must not be empty")
    return hash_name, int(count), prefix


class PartitionFiles:
    """The R open partition files; `write` appends lines to each, `close` closes them all.
    An error names the file and ends the tool with exit status 1."""

    def __init__(self, prefix: str, partitions: int):
        self.names = [f"{prefix}{r}" for r in range(partitions)]
        self.fds: list[int] = []
        for name in self.names:
            try:
                self.fds.append(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
            except OSError as e:
                hint = (f" ({partitions} partitions need {partitions} open files; "
                        "see ulimit -n)") if e.errno == 24 else ""
                self.fail(f"cannot create {name}: {e.strerror}{hint}")

    def write(self, blocks: list[bytes]) -> None:
        for fd, name, block in zip(self.fds, self.names, blocks):
            if block:
                try:
                    write_all(fd, block)
                except OSError as e:
                    self.fail(f"cannot write {name}: {e.strerror}")

    def close(self) -> None:
        fds, self.fds = self.fds, []
        for fd, name in zip(fds, self.names):
            try:
                os.close(fd)
            except OSError as e:
                self.fail(f"cannot close {name}: {e.strerror}")

    def fail(self, message: str) -> None:
        say("intermediate", message)
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    start()
    hash_name, partitions, prefix = parse_args(sys.argv[1:] if argv is None else argv)
    partitioner = Partitioner(partitions, hash_name)
    files = PartitionFiles(prefix, partitions)
    pieces = Pieces(b"\n")
    try:
        for chunk in chunks(0):
            block = pieces.feed(chunk)
            if block is not None:
                files.write(partitioner.split(block.split(b"\n")))
    except OSError as e:
        files.fail(f"cannot read standard input: {e.strerror}")
    tail = pieces.finish()
    if tail is not None:
        files.write(partitioner.split([tail]))
    files.close()
    if partitioner.left_out:
        n = partitioner.left_out
        lineno, line = partitioner.first_left_out
        why = ("not of exactly two fields" if hash_name == "65599"
               else "without a key (empty or only blanks)")
        say("intermediate", f"{n} line{'s' if n != 1 else ''} {why} went to no partition "
                            f"(first: line {lineno}: {shown(line)})")
        sys.stderr.write(f"reporter:counter:intermediate,lines left out,{n}\n")


if __name__ == "__main__":
    main()
