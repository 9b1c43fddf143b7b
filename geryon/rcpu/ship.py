"""Shipped files: what `rcpu --ship FILE` sends ahead of a block, seen by it at /n/client.

The cpu service's tree has one directory, `/ship`, private to each connection: a caller
writes files into it over SFTP (on the connection its block will use), and a block run with
`--ship` on that connection finds them, read-only, at /n/client, as the Inferno original's
blocks found the caller's own name space there.  They go when the connection does.  Each
connection may ship at most MAX_FILES files of at most MAX_BYTES in all, refused at the
write that would pass the limit.
"""

import os
import weakref
from pathlib import Path

from geryon.errors import LimitExceeded, NotFound, PermissionDenied
from geryon.ns.tree import Dir, File, Handle, StaticDir, Stat

MAX_BYTES = 64 << 20
MAX_FILES = 1000
SHIPPERS = frozenset({"submit"})
RC_NAME = ".gridrc.sh"  # the caller's own gridrc.sh, sourced by a block run with --rc


class Shipment:
    """One connection's shipped files: name -> [data, mode]."""

    def __init__(self):
        self.files: dict[str, list] = {}

    @property
    def size(self) -> int:
        return sum(len(data) for data, _ in self.files.values())

    def write_to(self, directory: Path) -> None:
        """Put the files in directory, for the block's /n/client."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, (data, mode) in self.files.items():
            if name == RC_NAME:
                continue
            path = directory / name
            path.write_bytes(bytes(data))
            os.chmod(path, mode & 0o755)


    def write_rc(self, path: Path) -> bool:
        """Put the caller's gridrc.sh at path; whether there was one."""
        if RC_NAME not in self.files:
            return False
        path.write_bytes(bytes(self.files[RC_NAME][0]))
        return True


class ShipHandle(Handle):
    def __init__(self, shipment: Shipment, name: str):
        self.shipment = shipment
        self.name = name
        self.entry = shipment.files[name]

    async def read(self, offset, size):
        return bytes(self.entry[0][offset:offset + size])

    async def write(self, offset, data):
        end = offset + len(data)
        grow = max(0, end - len(self.entry[0]))
        if self.shipment.size + grow > MAX_BYTES:
            raise LimitExceeded(f"/ship: shipped files may hold {MAX_BYTES} bytes in all on "
                                "one connection; ship less, or put big inputs on a disk")
        if grow:
            self.entry[0].extend(b"\0" * grow)
        self.entry[0][offset:end] = data

    async def truncate(self, size):
        if size > len(self.entry[0]):
            await self.write(len(self.entry[0]), b"\0" * (size - len(self.entry[0])))
        del self.entry[0][size:]

    def set_attributes(self, mode=None, mtime=None):
        if mode is not None:
            self.entry[1] = mode

    def size(self):
        return len(self.entry[0])


class ShipFile(File):
    readers = writers = SHIPPERS

    def __init__(self, shipment: Shipment, name: str):
        self.shipment, self.name = shipment, name

    def size(self, caller):
        return len(self.shipment.files.get(self.name, [b""])[0])

    def stat(self, caller):
        return Stat(False, self.size(caller), 0.0, True,
                    self.shipment.files.get(self.name, [b"", 0o644])[1] & 0o777)

    async def open(self, caller, read, write):
        return ShipHandle(self.shipment, self.name)


class ShipDir(Dir):
    """/ship: the calling connection's own shipped files."""

    readers = writers = SHIPPERS

    def __init__(self, shipments: "Shipments"):
        self.shipments = shipments

    def entries(self, caller):
        shipment = self.shipments.of(caller)
        return {name: ShipFile(shipment, name) for name in shipment.files}

    def create(self, name, caller):
        if name in (".", "..") or "/" in name or not name.isprintable():
            raise PermissionDenied(f"/ship/{name!r}: ship files by plain names")
        shipment = self.shipments.of(caller)
        if name not in shipment.files and len(shipment.files) >= MAX_FILES:
            raise LimitExceeded(f"/ship: at most {MAX_FILES} files may be shipped on one "
                                "connection")
        shipment.files.setdefault(name, [bytearray(), 0o644])
        return ShipFile(shipment, name)

    def remove(self, name, caller):
        if self.shipments.of(caller).files.pop(name, None) is None:
            raise NotFound(f"/ship/{name}: no such file")


class Shipments:
    """Every connection's shipment, gone with its connection's Caller."""

    def __init__(self):
        self._by_caller = weakref.WeakKeyDictionary()

    def of(self, caller) -> Shipment:
        if caller not in self._by_caller:
            self._by_caller[caller] = Shipment()
        return self._by_caller[caller]

    def tree(self) -> Dir:
        return StaticDir({"ship": ShipDir(self)})
