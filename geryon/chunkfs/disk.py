"""A chunk served as a file tree (docs/disk.md is its manual page).

Every cluster role may read a disk; only `cpu` and `admin` may change it.  A file opened
for writing is gathered in memory and written to the chunk as one record when it is closed:
a reader never sees half a file, and a write that does not fit is refused whole, with the
chunk as it was.  What open files gather is bounded by the chunk's free space, all of them
together: a write, truncate or set-size that would take them past it is refused at once,
before anything is gathered, so a client cannot make the node hold more than the chunk
could store.

A replica (a chunk following its master, geryon.disks.replica) is served read-only: the
tree's `read_only` gives the sentence that refuses every change, naming the master.
"""

import errno
import time
from contextlib import contextmanager

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkError, ChunkFull
from geryon.chunkfs.sizes import format_size
from geryon.ns.tree import (ANYONE, Dir, Exists, File, Handle, NotFound, NsError,
                            PermissionDenied, Stat)

WRITERS = frozenset({"cpu", "admin"})
KINDS = {errno.ENOENT: NotFound, errno.EEXIST: Exists, errno.EACCES: PermissionDenied,
         errno.EPERM: PermissionDenied}


@contextmanager
def as_ns_errors():
    """Give chunk errors back to the client as tree errors, their messages intact."""
    try:
        yield
    except ChunkError as err:
        raise KINDS.get(err.errno, NsError)(str(err)) from None


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class DiskTree:
    """One chunk served as a tree: the chunk, its open files, and who to tell of changes."""

    def __init__(self, chunk: Chunk, on_change=None):
        self.chunk = chunk
        self.on_change = on_change or (lambda: None)
        # Files created but not closed yet: they exist for stat (sshfs stats what it
        # opens) though nothing is in the chunk until the close.
        self.creating: dict[str, "DiskHandle"] = {}
        self.writing: set["DiskHandle"] = set()  # open for writing, to be stored at close
        # None, or a function giving the reason no client may change this disk (a replica)
        self.read_only = None

    def check_writable(self) -> None:
        """Refuse a change (PermissionDenied, with the reason) when the disk is read-only."""
        reason = self.read_only() if self.read_only else None
        if reason:
            raise PermissionDenied(reason)

    def may_write(self, caller) -> bool:
        return caller.may(WRITERS) and not (self.read_only and self.read_only())

    def make_room(self, handle: "DiskHandle", size: int) -> None:
        """Refuse (ChunkFull) to let `handle` hold `size` bytes if, with what the other open
        files hold to store, that is more than the chunk's free space."""
        held = sum(len(h.data) for h in self.writing if h is not handle and h.dirty)
        free = self.chunk.free
        if size + held > free:
            others = (f", and other open files hold {format_size(held)} to store"
                      if held else "")
            raise ChunkFull(f"{handle.file.path}: cannot make the file {size} bytes long: "
                            f"disk {self.chunk.path} has {free} bytes free "
                            f"({format_size(free)}){others}; write less, or to another disk",
                            size + held, free)

    def node(self, entry):
        return DiskDir(self, entry.path) if entry.is_dir else DiskFile(self, entry.path)

    def root(self) -> "DiskDir":
        return DiskDir(self, "")


class DiskNode:
    readers = ANYONE
    writers = WRITERS

    def __init__(self, disk: DiskTree, path: str):
        self.disk = disk
        self.path = path

    def stat(self, caller):
        with as_ns_errors():
            if not self.path:
                return Stat(True, 0, time.time(), self.disk.may_write(caller))
            entry = self.disk.chunk.stat(self.path)
        return Stat(entry.is_dir, entry.size, entry.mtime, self.disk.may_write(caller),
                    entry.mode)

    def set_attributes(self, caller, mode=None, mtime=None):
        if self.path:
            self.disk.check_writable()
            with as_ns_errors():
                self.disk.chunk.set_attributes(self.path, mode=mode, mtime=mtime)
            self.disk.on_change()


class DiskDir(DiskNode, Dir):
    def entries(self, caller):
        with as_ns_errors():
            return {e.name: self.disk.node(e) for e in self.disk.chunk.listdir(self.path)}

    def child(self, name, caller):
        path = join(self.path, name)
        if path in self.disk.creating:
            return DiskFile(self.disk, path, new=True)
        with as_ns_errors():
            if not self.disk.chunk.exists(path):
                return None
            return self.disk.node(self.disk.chunk.stat(path))

    def create(self, name, caller):
        self.disk.check_writable()
        return DiskFile(self.disk, join(self.path, name), new=True)

    def mkdir(self, name, caller):
        self.disk.check_writable()
        with as_ns_errors():
            self.disk.chunk.mkdir(join(self.path, name))
        self.disk.on_change()

    def remove(self, name, caller):
        self.disk.check_writable()
        with as_ns_errors():
            self.disk.chunk.remove(join(self.path, name))
        self.disk.on_change()

    def rename(self, name, target, new_name, caller):
        if not isinstance(target, DiskDir) or target.disk is not self.disk:
            raise PermissionDenied(f"{name}: cannot rename across disks")
        self.disk.check_writable()
        with as_ns_errors():
            self.disk.chunk.rename(join(self.path, name), join(target.path, new_name))
        self.disk.on_change()


class DiskFile(DiskNode, File):
    def __init__(self, disk, path, new=False):
        super().__init__(disk, path)
        self.new = new

    def stat(self, caller):
        pending = self.disk.creating.get(self.path)
        if pending is not None:
            return Stat(False, len(pending.data), time.time(), self.disk.may_write(caller),
                        pending.mode)
        return super().stat(caller)

    async def open(self, caller, read, write):
        if write:
            self.disk.check_writable()
        if self.new or self.path in self.disk.creating:
            handle = DiskHandle(self, b"", write, 0o644)
            if write:
                self.disk.creating[self.path] = handle
        else:
            with as_ns_errors():
                entry = self.disk.chunk.stat(self.path)
                content = self.disk.chunk.read(self.path)
            handle = DiskHandle(self, content, write, entry.mode)
        if write:
            self.disk.writing.add(handle)
        return handle


class DiskHandle(Handle):
    """An open disk file: reads by offset; writes are kept until close, and then stored
    whole, or not at all if any write failed."""

    def __init__(self, file: DiskFile, content: bytes, writable: bool, mode: int):
        self.file = file
        self.data = bytearray(content)
        self.writable = writable
        self.mode = mode  # a replaced file keeps its mode
        self.mtime = None
        self.dirty = file.new  # a created file exists once closed, even if empty
        self.broken = False

    def set_attributes(self, mode=None, mtime=None):
        if mode is not None:
            self.mode = mode & 0o7777
        if mtime is not None:
            self.mtime = mtime
        self.dirty = self.dirty or self.writable

    async def read(self, offset, size):
        return bytes(self.data[offset:offset + size])

    async def write(self, offset, data):
        if not self.writable:
            await super().write(offset, data)
        end = offset + len(data)
        if end > len(self.data):
            try:
                with as_ns_errors():
                    self.file.disk.make_room(self, end)
            except NsError:
                self.broken = True  # what was written so far must not be stored at close
                raise
            self.data.extend(b"\0" * (end - len(self.data)))
        self.data[offset:end] = data
        self.dirty = True

    async def truncate(self, size):
        if not self.writable:
            raise PermissionDenied(f"{self.file.path}: not open for writing")
        if size <= len(self.data):
            del self.data[size:]
        else:
            with as_ns_errors():  # refused at once: the file is as it was
                self.file.disk.make_room(self, size)
            self.data.extend(b"\0" * (size - len(self.data)))
        self.dirty = True

    async def close(self):
        creating = self.file.disk.creating
        if creating.get(self.file.path) is self:
            del creating[self.file.path]
        self.file.disk.writing.discard(self)
        if self.writable and self.dirty and not self.broken:
            self.dirty = False
            with as_ns_errors():
                self.file.disk.chunk.write(self.file.path, bytes(self.data), self.mode,
                                           self.mtime)
            self.file.disk.on_change()

    async def abort(self):
        self.broken = True  # a file its writer never closed is not stored
        await self.close()

    def size(self):
        return len(self.data)
