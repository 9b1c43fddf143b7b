"""Reading the cluster's view of its disks: the ndb file's names and the registry's
services, handed to the pure functions of names and plan."""

from pathlib import Path

from geryon.disks.names import DiskState, NamedDisk, disks_of, states
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
