"""Synthetic file trees: the data structures every Geryon server serves over SFTP.

Theory of operation.  A tree is made of Dir and File nodes.  A File's open() is code: it
returns a Handle holding the state of that one open (what a `find` was asked, which event
a reader last saw, the registry entry a `new` made).  Handles come in two kinds:

- TextHandle: the content is produced at open (and again after each write, if the file
  answers writes) and read by offset, so any SFTP client, OpenSSH's `sftp get` included,
  reads it like a plain file;
- MessageHandle: each read returns the next message whatever its offset and may wait for
  one (Inferno-style `event`, Owen's `task`); each write is one message.

Permissions are by role: every node names the roles that may read and those that may
write; `admin` may do anything.  Nothing here touches the network; geryon.ns.sftp adapts
a tree to asyncssh's SFTP server.
"""

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from geryon.errors import Exists, NotFound, NsError, PermissionDenied  # noqa: F401 (re-exported)
from geryon.roles import ROLES

ANYONE = frozenset(ROLES)
NOBODY = frozenset()


@dataclass(eq=False)
class Caller:
    """Who is asking: an authenticated identity with its roles, on one connection."""

    identity: str
    roles: frozenset
    peer: str = ""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    grant: tuple = ()  # roles a join token granted, until the join is signed

    def may(self, roles: frozenset) -> bool:
        return "admin" in self.roles or bool(self.roles & roles)

    async def unless_closed(self, awaitable):
        """Await awaitable, but give up (raise ConnectionError) if the caller goes away."""
        return await unless(awaitable, self.closed.wait(), why=f"{self.identity} went away")


async def unless(awaitable, stopper, why: str):
    """Await awaitable; if stopper finishes first, cancel it and raise ConnectionError(why)."""
    task = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(stopper)
    try:
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task in done:
        return task.result()
    task.cancel()
    raise ConnectionError(why)


@dataclass
class Stat:
    """What a stat of a node says."""

    is_dir: bool
    size: int = 0
    mtime: float = 0.0
    writable: bool = False
    mode: int | None = None  # stored permission bits, where the tree keeps them


class Node:
    """A file or directory; readers and writers are the roles allowed each."""

    readers: frozenset = ANYONE
    writers: frozenset = NOBODY
    is_dir = False

    def stat(self, caller: Caller) -> Stat:
        return Stat(self.is_dir, 0, time.time(), caller.may(self.writers))

    def check(self, caller: Caller, write: bool, what: str) -> None:
        allowed = self.writers if write else self.readers
        if not caller.may(allowed):
            verb = "write" if write else "read"
            need = ", ".join(sorted(allowed)) or "nobody but admin"
            raise PermissionDenied(f"{what}: permission denied; {verb} needs role {need}")


class Dir(Node):
    """A directory; entries() lists it, child() finds one name (default: via entries)."""

    is_dir = True

    def entries(self, caller: Caller) -> dict:
        return {}

    def child(self, name: str, caller: Caller):
        return self.entries(caller).get(name)

    # Mutations are refused unless a directory says otherwise.
    def create(self, name: str, caller: Caller) -> "File":
        raise PermissionDenied(f"{name}: cannot create files here")

    def mkdir(self, name: str, caller: Caller) -> None:
        raise PermissionDenied(f"{name}: cannot make directories here")

    def remove(self, name: str, caller: Caller) -> None:
        raise PermissionDenied(f"{name}: cannot remove this")

    def rename(self, name: str, target: "Dir", new_name: str, caller: Caller) -> None:
        raise PermissionDenied(f"{name}: cannot rename this")


class StaticDir(Dir):
    """A directory with a fixed set of children."""

    def __init__(self, children: dict | None = None):
        self.children = dict(children or {})

    def entries(self, caller):
        return self.children


class Handle:
    """The state of one open file.  Reads past the end return b''."""

    async def read(self, offset: int, size: int) -> bytes:
        raise PermissionDenied("file is not open for reading")

    async def write(self, offset: int, data: bytes) -> None:
        raise PermissionDenied("file is not open for writing")

    async def truncate(self, size: int) -> None:
        """Cut the file to size (files that are messages, not content, ignore it)."""

    def set_attributes(self, mode: int | None = None, mtime: float | None = None) -> None:
        """Set mode or mtime through the open file (trees that keep none ignore it)."""

    async def close(self) -> None:
        pass

    async def abort(self) -> None:
        """The session ended with this file still open (its client went away or never
        closed it): a close by default; a file whose writes are stored at close stores
        nothing instead."""
        await self.close()

    def size(self) -> int:
        return 0


class File(Node, ABC):
    """A file whose open is code; subclasses return their own Handle."""

    def size(self, caller: Caller) -> int:
        return 0

    def stat(self, caller):
        return Stat(False, self.size(caller), time.time(), caller.may(self.writers))

    @abstractmethod
    async def open(self, caller: Caller, read: bool, write: bool) -> Handle:
        """The state of one open of this file, for this caller."""


class TextHandle(Handle):
    """Content made at open (or at the first read, when given as a function), read by
    offset; writes (if allowed) call on_write, whose returned bytes, if any, become the
    content (how `find` answers its filter without first making what it would replace)."""

    def __init__(self, content=b"", on_write=None):
        self._content = content
        self.on_write = on_write

    @property
    def content(self) -> bytes:
        if callable(self._content):
            self._content = self._content()
        return self._content

    @content.setter
    def content(self, value: bytes) -> None:
        self._content = value

    async def read(self, offset, size):
        return self.content[offset:offset + size]

    async def write(self, offset, data):
        if self.on_write is None:
            await super().write(offset, data)
        result = self.on_write(data)
        if asyncio.iscoroutine(result):
            result = await result
        if result is not None:
            self.content = result

    def size(self):
        return len(self.content)


class TextFile(File):
    """A file whose content is a function of the caller, read like a plain file."""

    def __init__(self, content, on_write=None, readers=ANYONE, writers=NOBODY):
        self.content = content  # callable(caller) -> bytes
        self.on_write = on_write  # callable(caller, data) -> bytes | None
        self.readers, self.writers = readers, writers

    def size(self, caller):
        return len(self.content(caller))

    async def open(self, caller, read, write):
        on_write = None
        if self.on_write is not None:
            on_write = lambda data: self.on_write(caller, data)  # noqa: E731
        return TextHandle(self.content(caller) if read else b"", on_write)


class MessageHandle(Handle):
    """Each read returns the next message from next_message(), waiting for it if need be;
    a message longer than the read is handed out over several reads."""

    def __init__(self, caller: Caller, next_message):
        self.caller = caller
        self.next_message = next_message  # async () -> bytes; b'' means end of file
        self.pending = b""

    async def read(self, offset, size):
        if not self.pending:
            self.pending = await self.caller.unless_closed(self.next_message())
        out, self.pending = self.pending[:size], self.pending[size:]
        return out
