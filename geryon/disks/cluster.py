"""Reading the cluster's view of its disks, the ndb file's names and the registry's
services, handed to the pure functions of names and plan; and naming new disks in the ndb
file (load names the disks it fills, refresh the cpu nodes' output disks)."""

import os
from pathlib import Path

from geryon.disks.names import DiskState, NamedDisk, disks_of, states
from geryon.disks.plan import Target
from geryon.ndb import Entry, format_entry
from geryon.ndb.database import Database
from geryon.ns.client import Client
from geryon.registry.core import Service


def named_disks(db: Database) -> list[NamedDisk]:
    """The disks the ndb database names; none when its file does not exist yet."""
    return disks_of(db.entries()) if Path(db.path).exists() else []


async def services(registry: Client, *pairs: str) -> list[Service]:
    """The registered services matching `attr value ...` (all of them with none)."""
    from geryon.registry.client import query
    return await query(registry, *pairs)


async def disk_states(registry: Client, ndb_path) -> list[DiskState]:
    """Every disk, named or registered, with its fill and state (`geryon disks`)."""
    return states(named_disks(Database(ndb_path)), await services(registry))


class Naming:
    """Appends disk entries to the ndb file (made if need be), durably, and takes back the
    last one appended while nothing else has been written after it."""

    def __init__(self, ndb_path: Path):
        self.path = Path(ndb_path)

    def name(self, target: Target) -> tuple[int, int]:
        """Append the target's entry; return the span it took, for take_back."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            start = f.tell()
            f.write(("\n" if start else "") + format_entry(Entry(
                [[("name", target.name), ("kfs", "")],
                 [("master", f"{target.host}!{target.chunk}")]])))
            f.flush()
            os.fsync(f.fileno())
            return start, f.tell()

    def take_back(self, span: tuple[int, int]) -> bool:
        """Remove an entry name() appended, if the file still ends with it."""
        start, end = span
        with open(self.path, "r+") as f:
            if os.fstat(f.fileno()).st_size != end:
                return False  # someone wrote after it: leave the file alone
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
        return True
