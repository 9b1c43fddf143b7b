"""What the cluster calls its disks, with no I/O: ndb entries and registry services in,
disks out.

A disk has three faces.  The ndb file *names* it (`name=dN.app kfs` with
`master=NODE!chunkN`): a NamedDisk.  A node *serves* its chunk, registered live as
`resource kfs host NODE id chunkN`: a live chunk, found with live_chunks().  refresh
*registers* the disk under its name with the chunk's address: a RegisteredDisk, which is
what a client dials.  states() sets the three side by side for `geryon disks`.

A disk may have replicas: `replica=NAME` on its entry (as often as it has copies) names
other disks, each marked with a bare `replica`, whose chunks follow the master's log.  A
replica is *in sync* when its chunk has the master's log id and at least the bytes the
master last published; replica_state() says so, or how far behind it is.
"""

from dataclasses import dataclass

from geryon.disks.errors import DiskError
from geryon.ndb.attrdb import NdbError
from geryon.registry.core import RegistryError, Service, check_name


@dataclass(frozen=True)
class NamedDisk:
    """A disk as the ndb file names it: its name, and the chunk that holds it."""

    name: str
    host: str
    chunk: str
    replica: str = ""  # its replicas' names, blank-separated, as the registry lists them
    source: str | None = None  # the ndb file and line of its entry, for messages
    lineno: int | None = None
    copy: bool = False  # the entry is marked `replica`: this disk is another's copy

    @property
    def replicas(self) -> list[str]:
        return self.replica.split()

    @property
    def master(self) -> str:
        return f"{self.host}!{self.chunk}"


@dataclass(frozen=True)
class RegisteredDisk:
    """A disk's registry entry (made by refresh): where to dial it."""

    name: str
    addr: str
    host: str
    chunk: str
    replica: str = ""

    @classmethod
    def of(cls, service: Service) -> "RegisteredDisk":
        if "addr" not in service.attrs and service.attrs.get("down"):
            raise DiskError(f"disk {service.name} is down: {service.attrs['down']}")
        if "addr" not in service.attrs:
            raise DiskError(f"{service.name} is registered but has no addr; it is not a disk")
        attrs = service.attrs
        return cls(service.name, attrs["addr"], attrs.get("host", ""), attrs.get("id", ""),
                   attrs.get("replica", ""))


def check_disk_name(name: str) -> str:
    """The name, if it can name a disk (a registry service name); else DiskError."""
    try:
        return check_name(name)
    except RegistryError:
        raise DiskError(f"{name!r} is not a disk name (disks are named like d0.mbox)") from None


def disks_of(entries) -> list[NamedDisk]:
    """The disks named in ndb entries, in order.  An entry without a usable master, a name
    that cannot be a disk's, or a name given twice is an NdbError naming file and line."""
    disks: dict[str, NamedDisk] = {}
    for entry in entries:
        if not entry.has("kfs") or not entry.get("name"):
            continue
        name, master = entry.get("name"), entry.get("master") or ""
        try:
            check_disk_name(name)
        except DiskError as err:
            raise NdbError(str(err), entry.source, entry.lineno) from None
        host, bang, chunk = master.partition("!")
        if not bang or not host or not chunk:
            raise NdbError(f"disk {name} has master={master!r}; write it as "
                           "master=HOST!chunkN", entry.source, entry.lineno)
        if name in disks:
            first = disks[name]
            raise NdbError(f"disk {name} is named again (first at {first.source}:"
                           f"{first.lineno}); a disk has one entry: remove or rename one",
                           entry.source, entry.lineno)
        replicas = [r for r in entry.getall("replica") if r]
        for replica in replicas:
            try:
                check_disk_name(replica)
            except DiskError as err:
                raise NdbError(f"disk {name}: replica={replica}: {err}", entry.source,
                               entry.lineno) from None
        disks[name] = NamedDisk(name, host, chunk, " ".join(replicas), entry.source,
                                entry.lineno, copy="" in entry.getall("replica"))
    return list(disks.values())


def replica_state(master_used: int | None, master_log: str | None, replica) -> tuple:
    """(state, bytes behind) of a replica's live chunk (None: not served) against what its
    master holds (or last published): 'in sync', 'behind', 'other log' (it will fetch the
    master whole) or 'down'."""
    if replica is None:
        return "down", None
    if master_used is None or not master_log:
        return "unknown", None
    if replica.attrs.get("log") != master_log:
        return "other log", None
    behind = master_used - int(replica.attrs.get("used", 0))
    return ("in sync", 0) if behind <= 0 else ("behind", behind)


def describe(state: str, behind: int | None) -> str:
    """A replica state as people read it."""
    return {"behind": f"behind by {behind} bytes",
            "other log": "behind (fetching the master's new log whole)",
            "unknown": "unknown (what its master published is not known)"}.get(state, state)


def live_chunks(services: list[Service]) -> dict:
    """The registered chunk services, by (host, chunk id): what master=HOST!chunkN names."""
    return {(s.attrs.get("host"), s.attrs.get("id")): s for s in services
            if s.attrs.get("resource") == "kfs"}


def registered_disks(services: list[Service]) -> dict:
    """The disk entries (those with automount) in the registry, by name."""
    return {s.name: s for s in services if "automount" in s.attrs}


def unserved(disks: list[NamedDisk], services: list[Service]) -> list[str]:
    """A message for each disk whose master names a node that serves no chunks at all, or a
    chunk its node does not serve: most often a misspelt name, else a node that is down."""
    chunks = live_chunks(services)
    served: dict[str, list[str]] = {}
    for host, chunk in chunks:
        served.setdefault(host, []).append(chunk)
    notes = []
    for disk in disks:
        if (disk.host, disk.chunk) in chunks:
            continue
        where = f"{disk.source}:{disk.lineno}: " if disk.source and disk.lineno else ""
        if disk.host not in served:
            nodes = ", ".join(sorted(served)) or "none"
            notes.append(f"{where}disk {disk.name}: no node {disk.host} serves chunks "
                         f"(nodes serving: {nodes}); start it, or correct master= "
                         f"{disk.host}!{disk.chunk}")
        else:
            have = ", ".join(sorted(served[disk.host], key=_chunk_order))
            notes.append(f"{where}disk {disk.name}: node {disk.host} serves no {disk.chunk} "
                         f"(it serves {have}); correct master={disk.host}!{disk.chunk}")
    return notes


def _chunk_order(chunk: str):
    digits = chunk.removeprefix("chunk")
    return (0, int(digits), "") if digits.isdigit() else (1, 0, chunk)


@dataclass(frozen=True)
class DiskState:
    """A disk as `geryon disks` shows it; used and size are None when its chunk is not
    served."""

    name: str
    host: str
    chunk: str
    used: int | None
    size: int | None
    state: str  # live, unregistered, down, stale; a replica's: in sync, behind by N, ...
    replica_of: str = ""  # the master disk, for a replica's row


def states(disks: list[NamedDisk], services: list[Service]) -> list[DiskState]:
    """Every disk the ndb file names, and every registered disk it does not, with state:
    live (registered, chunk served), unregistered (chunk served, refresh has not run),
    down (chunk not served, entry dropped), stale (registered, chunk gone or not named)."""
    chunks = live_chunks(services)
    registered = registered_disks(services)
    by_name = {d.name: d for d in disks}
    shown = {r for d in disks for r in d.replicas if r in by_name}
    out = []
    for disk in disks:
        if disk.name in shown:
            continue  # shown beneath its master
        entry = registered.get(disk.name)
        chunk = chunks.get((disk.host, disk.chunk))
        if chunk:
            state = "live" if disk.name in registered else "unregistered"
            if entry is not None and disk.replicas:
                state += ", serving" if entry.attrs.get("addr") == chunk.name else ""
            out.append(DiskState(disk.name, disk.host, disk.chunk,
                                 int(chunk.attrs.get("used", 0)),
                                 int(chunk.attrs.get("size", 0)), state))
        else:
            state = "stale" if entry is not None and "addr" in entry.attrs and \
                "serving" not in entry.attrs else "down"
            if entry is not None and entry.attrs.get("down"):
                state = f"down: {entry.attrs['down']}"
            out.append(DiskState(disk.name, disk.host, disk.chunk, None, None, state))
        if chunk:
            used, log = int(chunk.attrs.get("used", 0)), chunk.attrs.get("log")
        elif entry is not None and entry.attrs.get("used", "").isdigit():
            used, log = int(entry.attrs["used"]), entry.attrs.get("log")
        else:
            used = log = None
        for name in disk.replicas:
            copy = by_name.get(name)
            if copy is None:
                out.append(DiskState(name, "-", "-", None, None,
                                     "not named in the ndb file", disk.name))
                continue
            served = chunks.get((copy.host, copy.chunk))
            state = describe(*replica_state(used, log, served))
            if entry is not None and entry.attrs.get("serving") == name:
                state += ", serving (read-only)"
            out.append(DiskState(name, copy.host, copy.chunk,
                                 int(served.attrs.get("used", 0)) if served else None,
                                 int(served.attrs.get("size", 0)) if served else None,
                                 state, disk.name))
    named = {d.name for d in disks}
    for name, entry in sorted(registered.items()):
        if name not in named:
            out.append(DiskState(name, entry.attrs.get("host", "-"),
                                 entry.attrs.get("id", "-"), None, None, "stale"))
    return out


def split_spec(spec: str) -> tuple[str, str]:
    """`d0.mbox:path/in/it` -> ('d0.mbox', 'path/in/it'); no colon means the disk's root."""
    disk, _, path = spec.partition(":")
    if not disk:
        raise DiskError(f"{spec!r} names no disk; write DISK[:PATH], e.g. d0.mbox:mail/1")
    return disk, path.strip("/")
