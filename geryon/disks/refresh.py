"""refresh: make the registry's disk entries agree with ndb/cluster and the live chunks.

caerwyn's refresh, made idempotent and complete.  For every disk the ndb file names
(`name=dN.app kfs` with `master=HOST!chunkN`) whose chunk is registered live (`resource kfs
host HOST id chunkN`), the registry should hold the persistent entry

    dN.app host HOST automount 1 persist 1 addr tcp!H!P id chunkN [replica R]

Entries with `automount` whose disk is no longer named, or whose chunk is gone, are removed.
plan() is pure: ndb entries and registry services in, actions out; Refresher applies them.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from geryon import quote
from geryon.errors import GeryonError
from geryon.ndb.database import Database
from geryon.registry.core import Service

log = logging.getLogger("geryon.refresh")

GRACE = 3.0  # seconds after dialling the registry before refresh --watch removes entries


class RefreshError(GeryonError):
    """A disk refresh could not bring into the registry."""


@dataclass(frozen=True)
class Disk:
    """A disk as the ndb file names it."""

    name: str
    host: str
    chunk: str
    replica: str = ""


@dataclass(frozen=True)
class Action:
    op: str  # add, update, remove
    name: str
    attrs: tuple = ()

    def __str__(self) -> str:
        return f"{self.op} {quote.join([self.name, *(w for kv in self.attrs for w in kv)])}"


def disks_of(entries) -> list[Disk]:
    """The disks named in ndb entries; an entry without a usable master is an error."""
    disks = []
    for entry in entries:
        if not entry.has("kfs") or not entry.get("name"):
            continue
        name, master = entry.get("name"), entry.get("master") or ""
        host, bang, chunk = master.partition("!")
        if not bang or not host or not chunk:
            where = f"{entry.source}:{entry.lineno}" if entry.source else "ndb"
            raise RefreshError(f"{where}: disk {name} has master={master!r}; write it as "
                               "master=HOST!chunkN")
        replica = entry.get("replica") or ""
        disks.append(Disk(name, host, chunk, replica))
    return disks


def desired(disk: Disk, chunk: Service) -> dict:
    attrs = {"host": disk.host, "automount": "1", "persist": "1", "addr": chunk.name,
             "id": disk.chunk}
    if disk.replica:
        attrs["replica"] = disk.replica
    return attrs


def live_chunks(services: list[Service]) -> dict:
    """The registered chunk services, by (host, chunk id): what master=HOST!chunkN names."""
    return {(s.attrs.get("host"), s.attrs.get("id")): s for s in services
            if s.attrs.get("resource") == "kfs"}


@dataclass(frozen=True)
class DiskState:
    """A disk as `geryon disks` shows it; used and size are None when its chunk is not
    served."""

    name: str
    host: str
    chunk: str
    used: int | None
    size: int | None
    state: str  # live, unregistered, down, stale


def states(disks: list[Disk], services: list[Service]) -> list[DiskState]:
    """Every disk the ndb file names, and every registered disk it does not, with state:
    live (registered, chunk served), unregistered (chunk served, refresh has not run),
    down (chunk not served, entry dropped), stale (registered, chunk gone or not named)."""
    chunks = live_chunks(services)
    registered = {s.name: s for s in services if "automount" in s.attrs}
    out = []
    for disk in disks:
        chunk = chunks.get((disk.host, disk.chunk))
        if chunk:
            out.append(DiskState(disk.name, disk.host, disk.chunk,
                                 int(chunk.attrs.get("used", 0)),
                                 int(chunk.attrs.get("size", 0)),
                                 "live" if disk.name in registered else "unregistered"))
        else:
            out.append(DiskState(disk.name, disk.host, disk.chunk, None, None,
                                 "stale" if disk.name in registered else "down"))
    named = {d.name for d in disks}
    for name, entry in sorted(registered.items()):
        if name not in named:
            out.append(DiskState(name, entry.attrs.get("host", "-"),
                                 entry.attrs.get("id", "-"), None, None, "stale"))
    return out


def plan(disks: list[Disk], services: list[Service], remove: bool = True) -> list[Action]:
    """What to do so the registry's disk entries match the ndb file and the live chunks
    (remove=False: add and update only, leave entries whose chunk is missing)."""
    chunks = live_chunks(services)
    current = {s.name: s for s in services if "automount" in s.attrs}
    actions = []
    wanted = set()
    for disk in disks:
        chunk = chunks.get((disk.host, disk.chunk))
        if chunk is None:
            continue  # its chunk is not live: the disk is not offered (removed below)
        wanted.add(disk.name)
        attrs = desired(disk, chunk)
        have = current.get(disk.name)
        if have is None:
            actions.append(Action("add", disk.name, tuple(attrs.items())))
        elif have.attrs != attrs:
            # an attribute that must go cannot be unset in place: replace the entry
            op = "update" if set(have.attrs) <= set(attrs) else "replace"
            actions.append(Action(op, disk.name, tuple(attrs.items())))
    for name in sorted(set(current) - wanted) if remove else ():
        actions.append(Action("remove", name))
    return actions


class Refresher:
    """Applies plans to a registry through a connected geryon.ns.client.Client."""

    def __init__(self, client, ndb_path: str | Path):
        self.client = client
        self.db = Database(ndb_path)

    async def services(self) -> list[Service]:
        from geryon.registry.client import query
        return await query(self.client)

    async def refresh(self, remove: bool = True) -> list[Action]:
        """Bring the registry in line once; return what was done."""
        if not Path(self.db.path).exists():
            raise RefreshError(f"ndb file {self.db.path} does not exist; make it, or give "
                               "--ndb FILE")
        actions = plan(disks_of(self.db.entries()), await self.services(), remove)
        failed = []
        for action in actions:
            try:
                await self.apply(action)
            except GeryonError as err:
                failed.append(f"disk {action.name}: {err}")
        if failed:
            raise RefreshError("; ".join(failed))
        return actions

    async def apply(self, action: Action) -> None:
        line = quote.join(w for kv in action.attrs for w in kv)
        sftp = await self.client.main()
        if action.op in ("remove", "replace"):
            try:
                await sftp.remove(f"/{action.name}")
            except Exception as err:
                from geryon.ns.client import explain
                raise explain(err, f"remove {action.name}") from None
        if action.op in ("add", "replace"):
            await self.client.write("/new", f"{quote.quote(action.name)} {line}")
        elif action.op == "update":
            await self.client.write(f"/{action.name}", line)
        log.info("%s", action)

    async def watch(self, interval: float = 0.5, on_done=None, grace: float = GRACE) -> None:
        """Refresh now and whenever the registry or the ndb file changes.

        For `grace` seconds after dialling, nothing is removed: the registry may just have
        restarted, and nodes take a moment to register their chunks again."""
        from geryon.registry.client import watch
        changed = asyncio.Event()

        async def follow_registry():
            async for _ in watch(self.client):
                changed.set()  # a refresh that finds nothing to do is one cheap query

        def ndb_now():
            # The Database re-reads only files that changed, so this is a few stats; an
            # unreadable file counts as a state too (its message), refreshed into an error.
            try:
                return tuple(self.db.entries())
            except (GeryonError, OSError) as err:
                return str(err)

        follower = asyncio.ensure_future(follow_registry())
        seen = None
        loop = asyncio.get_running_loop()
        removals_from = loop.time() + grace
        deferred = False  # a refresh ran in the grace period: run one more after it
        try:
            while not follower.done():
                ndb = ndb_now()
                may_remove = loop.time() >= removals_from
                if changed.is_set() or ndb != seen or (deferred and may_remove):
                    changed.clear()
                    seen = ndb
                    deferred = not may_remove
                    try:
                        actions = await self.refresh(remove=may_remove)
                        if on_done:
                            on_done(actions)
                    except GeryonError as err:
                        log.warning("refresh: %s", err)
                        if on_done:
                            on_done(err)
                try:
                    await asyncio.wait_for(changed.wait(), interval)
                except asyncio.TimeoutError:
                    pass
            follower.result()  # the registry went away: say why
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

