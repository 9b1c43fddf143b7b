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


def file_arguments(prog: str, usage: str, help_text: str, argv) -> list[str]:
    """The file names a filter (idx, agg) was given: -h prints help_text and exits 0, `--`
    ends options, any other option is a usage error."""
    start()
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(help_text)
        sys.exit(0)
    if args[:1] == ["--"]:
        return args[1:]
    if args and args[0].startswith("-") and args[0] != "-":
        usage_error(prog, usage, f"unknown option {args[0]}")
    return args
