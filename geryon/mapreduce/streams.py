"""The I/O of idx, agg and intermediate: chunks from files or stdin, writes to fds, messages.

Kept to os, sys and signal so that a tool starts in little more than Python's own start-up
time: mapreduce starts them in every task.
"""

import os
import signal
import sys

CHUNK = 1 << 20


def start() -> None:
    """Die quietly of SIGPIPE when the reader goes away, as tr and awk do."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def say(prog: str, message: str) -> None:
    """One line on stderr, named by the tool."""
    sys.stderr.write(f"{prog}: {message}\n")
    sys.stderr.flush()


def shown(line: bytes, limit: int = 60) -> str:
    """A line as a message shows it: escapes for what is not printable ASCII, cut short."""
    text = repr(line[:limit])[1:]
    return text + ("..." if len(line) > limit else "")


def chunks(fd: int):
    """The bytes of an open file descriptor, a chunk at a time, to its end."""
    read = os.read
    while True:
        chunk = read(fd, CHUNK)
        if not chunk:
            return
        yield chunk


def inputs(prog: str, names: list[str]):
    """(name, file descriptor) of each input in turn, stdin for none or `-`; the descriptor
    is None for an input that could not be opened, which is reported here."""
    for name in names or ["-"]:
        if name == "-":
            yield "standard input", 0
            continue
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError as e:
            say(prog, f"cannot open {name}: {e.strerror}")
            yield name, None
            continue
        try:
            yield name, fd
        finally:
            os.close(fd)


def filter_inputs(prog: str, names: list[str], feed, end_of_file) -> bool:
    """Run a filter over the inputs to stdout: feed(chunk) and, at the end of each input,
    end_of_file() return bytes to write.  False if an input could not be read (each is
    reported, the others still run); a write error on stdout ends the tool (`write_out`)."""
    ok = True
    for name, fd in inputs(prog, names):
        if fd is None:
            ok = False
            continue
        try:
            for chunk in chunks(fd):
                out = feed(chunk)
                if out:
                    write_out(prog, out)
        except OSError as e:
            say(prog, f"cannot read {name}: {e.strerror}")
            ok = False
        out = end_of_file()
        if out:
            write_out(prog, out)
    return ok


def write_out(prog: str, data) -> None:
    """data to stdout; a failed write (disk full) ends the tool with exit status 1."""
    try:
        write_all(1, data)
    except OSError as e:
        say(prog, f"cannot write standard output: {e.strerror}")
        sys.exit(1)


def write_all(fd: int, data) -> None:
    """All of data to fd, however many writes it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def usage_error(prog: str, usage: str, message: str) -> None:
    """A usage mistake: what was wrong and the usage line, exit status 2."""
    say(prog, message)
    sys.stderr.write(usage)
    sys.exit(2)


def file_arguments(prog: str, usage: str, help_text: str, argv,
                   options: str = "") -> tuple[dict[str, str], list[str]]:
    """The options (getopt letters, e.g. "sS:") and file names a filter was given: -h
    prints help_text and exits 0, `--` ends options, any other option is a usage error."""
    import getopt

    start()
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(help_text)
        sys.exit(0)
    try:
        given, names = getopt.getopt(args, options)
    except getopt.GetoptError as e:
        usage_error(prog, usage, str(e))
    return dict(given), names


SORT_MEMORY = 256 << 20  # mrsort's and agg -s's memory for distinct lines, by default


def size_option(prog: str, usage: str, value: str | None, default: int) -> int:
    """A size such as 64M or 1G (chunkfs.sizes: binary units), or default for None."""
    if value is None:
        return default
    from geryon.chunkfs.sizes import parse_size
    from geryon.errors import GeryonError
    try:
        return parse_size(value)
    except GeryonError:
        usage_error(prog, usage, f"{value!r} is not a size; give one such as 64M or 1G")


class SortedRuns:
    """The lines of the inputs as `LC_ALL=C sort` orders them, for mrsort and `agg -s`:
    iterating gives lists of runs (line, how many).  Lines are counted (`lines.Tally`)
    until the distinct ones would pass limit bytes of memory; then everything goes to
    `LC_ALL=C sort`, which spills to $TMPDIR, and its output is read back.  An input that
    cannot be read is an error, as it is for sort: it is reported, nothing is given, and
    the tool exits 2."""

    def __init__(self, prog: str, names: list[str], limit: int):
        self.prog = prog
        self.names = names
        self.limit = limit
        self.sort = None  # sort(1), once the distinct lines pass the limit

    def __iter__(self):
        from geryon.mapreduce.lines import Pieces, Tally

        tally, pieces = Tally(self.limit), Pieces(b"\n")
        for name, fd in inputs(self.prog, self.names):
            if fd is None:  # reported by inputs()
                self._fail()
            last = b"\n"  # the file's last byte so far
            try:
                for chunk in chunks(fd):
                    last = chunk[-1:]
                    if self.sort is not None:
                        write_all(self.sort.stdin.fileno(), chunk)
                        continue
                    block = pieces.feed(chunk)
                    if block is not None and not tally.feed(block.split(b"\n"), len(block)):
                        self._hand_over(tally, pieces)
            except OSError as e:
                say(self.prog, f"cannot read {name}: {e.strerror}")
                self._fail()
            # a file's last line ends at the file's end, as sort has it
            if self.sort is not None:
                if last != b"\n":
                    write_all(self.sort.stdin.fileno(), b"\n")
            elif (tail := pieces.finish()) is not None and not tally.feed([tail], len(tail)):
                self._hand_over(tally, pieces)
        if self.sort is None:
            yield from tally.runs()
        else:
            yield from self._sorted_by_sort(self.sort)

    def _fail(self) -> None:
        if self.sort is not None:
            self.sort.kill()
            self.sort.wait()
        sys.exit(2)

    def _hand_over(self, tally, pieces) -> None:
        """sort(1), given every line so far (and the unfinished one).  A sort that dies
        while it is fed ends this tool too, of SIGPIPE, after sort's own message."""
        import subprocess

        from geryon.chunkfs.sizes import format_size
        say(self.prog, f"over {format_size(self.limit)} of distinct lines: sorting with "
                       "sort(1)")
        self.sort = subprocess.Popen(["sort"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**os.environ, "LC_ALL": "C"})
        for block in tally.lines():
            write_all(self.sort.stdin.fileno(), block)
        tally.counts.clear()
        tail = pieces.finish()
        if tail is not None:
            write_all(self.sort.stdin.fileno(), tail)

    def _sorted_by_sort(self, sort):
        """sort(1)'s output as runs; sort reads all of its input before it writes."""
        from geryon.mapreduce.lines import Pieces, runs_of

        sort.stdin.close()
        pieces = Pieces(b"\n")
        for chunk in chunks(sort.stdout.fileno()):
            block = pieces.feed(chunk)
            if block is not None:
                yield runs_of(block.split(b"\n"))
        status = sort.wait()
        if status:
            say(self.prog, f"sort(1) failed (exit status {status})")
            sys.exit(2)
        # sort ends every line with a newline: nothing is left unfinished
