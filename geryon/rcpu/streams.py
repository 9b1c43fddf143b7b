"""A caller's stdin, stdout and stderr as the rcpu client pumps them, by file descriptor.

The client may be the `rcpu` command itself or the local rcpu agent (geryon.rcpu.mux),
which serves many commands in one event loop with the descriptors they passed it, so
nothing here may block the loop: pipes, terminals and sockets are read and written through
the loop; regular files (and /dev/null), which never block for long, directly.  A reader of
stdout that goes away (`rcpu '{yes}' | head -1`) ends the block, as SIGPIPE would end a
local pipeline's writer.
"""

import asyncio
import os
import stat

import asyncssh


class CallerGone(Exception):
    """The caller's stdout or stderr was closed by its reader."""


def pollable(fd: int) -> bool:
    """Whether the event loop can wait on fd (epoll refuses regular files)."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) and os.isatty(fd)


class Sink:
    """Writes to a descriptor without blocking the loop; drain() waits for room."""

    def __init__(self, fd: int):
        self.fd = fd
        self.loop = asyncio.get_running_loop()
        self.pending = bytearray()
        self.room = asyncio.Event()
        self.room.set()
        self.broken = False
        self.polled = pollable(fd)
        if self.polled:
            os.set_blocking(fd, False)

    def write(self, data: bytes) -> None:
        self.pending += data
        self._flush()

    def _flush(self) -> None:
        while self.pending:
            try:
                written = os.write(self.fd, self.pending)
            except BlockingIOError:
                if self.room.is_set():
                    self.room.clear()
                    self.loop.add_writer(self.fd, self._writable)
                return
            except (BrokenPipeError, ConnectionResetError):
                self.pending.clear()
                raise CallerGone from None
            del self.pending[:written]

    def _writable(self) -> None:
        self.loop.remove_writer(self.fd)
        self.room.set()
        try:
            self._flush()
        except CallerGone:
            self.broken = True

    async def drain(self) -> None:
        while self.pending:
            await self.room.wait()
            if self.broken:
                raise CallerGone
            self._flush()

    def close(self) -> None:
        if not self.room.is_set():
            self.loop.remove_writer(self.fd)
        if self.polled:
            try:
                os.set_blocking(self.fd, True)
            except OSError:
                pass


class Feeder:
    """Copies a descriptor (the caller's stdin) to a block's stdin until end of file or
    stop(); a terminal that never ends holds nothing once the block is done."""

    def __init__(self, fd: int, write, write_eof, drain):
        self.fd, self.write, self.write_eof, self.drain = fd, write, write_eof, drain
        self.loop = asyncio.get_running_loop()
        self.task = None
        if pollable(fd):
            os.set_blocking(fd, False)
            self.loop.add_reader(fd, self._readable)
            self.reading = True
        else:
            self.reading = False
            self.task = asyncio.ensure_future(self._copy_file())

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self._send(data)

    async def _copy_file(self) -> None:
        """A regular file, read as fast as the block takes it (drain: not all of it
        buffered in memory at once)."""
        while True:
            data = await self.loop.run_in_executor(None, os.read, self.fd, 1 << 16)
            if not self._send(data):
                return
            try:
                await self.drain()
            except (asyncssh.Error, OSError):
                self.stop()
                return

    def _send(self, data: bytes) -> bool:
        try:
            if data:
                self.write(data)
                return True
            self.write_eof()
        except (asyncssh.Error, OSError):  # the block's stdin is gone: nothing to give it
            pass
        self.stop()
        return False

    def stop(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False
            try:
                os.set_blocking(self.fd, True)
            except OSError:
                pass
        if self.task is not None and not self.task.done():
            self.task.cancel()
