"""What refresh and load should do, with no I/O: disks named, services registered and
files found in, actions and choices out.  refresh.py and load.py carry them out.

refresh: for every disk the ndb file names whose chunk is registered live, the registry
should hold the persistent entry

    dN.app host HOST automount 1 persist 1 addr tcp!H!P id chunkN [replica R]

and entries with `automount` whose disk is no longer named, or whose chunk is gone, go.

A disk with replicas also records in its entry what its master last published (`used U
log L`).  When the master's chunk is gone (and removing is allowed: not in refresh
--watch's grace), the entry is pointed at a live replica that holds all of that, marked
`serving NAME readonly 1 master HOST!chunkN`; when none does, the entry stays without an
`addr`, with `down REASON`, keeping the record, so that a replica that catches up later
(or the master returning) is served again.  A replica that is behind is never served.

load: empty chunks to fill, in order (empty disks the ndb file names for the application
first, by number; then unnamed empty chunks round-robin across nodes), and which files are
already on the application's disks, so that a load run again after it stopped short loads
only the rest.
"""

import re
from dataclasses import dataclass

from geryon import quote
from geryon.chunkfs.record import HEADER_SIZE
from geryon.disks.errors import LoadError
from geryon.disks.names import (NamedDisk, describe, live_chunks, registered_disks,
                                replica_state)
from geryon.registry.core import Service


@dataclass(frozen=True)
class Action:
    """One registry change: op is add, update, replace (remove, then add) or remove."""

    op: str
    name: str
    attrs: tuple = ()

    def __str__(self) -> str:
        return f"{self.op} {quote.join([self.name, *(w for kv in self.attrs for w in kv)])}"


def desired(disk: NamedDisk, chunk: Service) -> dict:
    """The registry entry a disk should have, given its live chunk."""
    attrs = {"host": disk.host, "automount": "1", "persist": "1", "addr": chunk.name,
             "id": disk.chunk}
    if disk.replica:
        attrs["replica"] = disk.replica
        attrs.update({k: chunk.attrs[k] for k in ("used", "log") if k in chunk.attrs})
    return attrs


def published(entry: Service | None) -> tuple[int | None, str | None]:
    """What a disk's entry records its master last published: (used, log id)."""
    if entry is None or not entry.attrs.get("used", "").isdigit():
        return None, None
    return int(entry.attrs["used"]), entry.attrs.get("log")


def failover(disk: NamedDisk, entry: Service | None, named: dict, chunks: dict) -> dict:
    """The entry a disk whose master's chunk is gone should have: served by a replica that
    holds all its master last published (the one serving already, if it still does, else
    the first in the ndb file's order), or, with none, no addr and the reason it is down."""
    used, log_id = published(entry)
    record = {"used": str(used), "log": log_id} if used is not None and log_id else {}
    serving = entry.attrs.get("serving") if entry is not None else None
    notes = []
    order = sorted(disk.replicas, key=lambda name: name != serving)
    for name in order:
        copy = named.get(name)
        chunk = chunks.get((copy.host, copy.chunk)) if copy is not None else None
        state, behind = replica_state(used, log_id, chunk)
        if state == "in sync":
            return {"host": copy.host, "automount": "1", "persist": "1", "addr": chunk.name,
                    "id": copy.chunk, "replica": disk.replica, **record, "serving": name,
                    "readonly": "1", "master": disk.master}
        said = "not named in the ndb file" if copy is None else describe(state, behind)
        notes.append(f"{name} is {said}")
    if not record:
        why = (f"its master {disk.master} is not served, and what it last published is not "
               "known, so no replica can be trusted")
    else:
        why = (f"its master {disk.master} is not served and no replica holds all it last "
               f"published ({'; '.join(notes)})")
    return {"host": disk.host, "automount": "1", "persist": "1", "id": disk.chunk,
            "replica": disk.replica, **record, "down": why}


def plan(disks: list[NamedDisk], services: list[Service], remove: bool = True) -> list[Action]:
    """What to do so the registry's disk entries match the ndb file and the live chunks
    (remove=False: add and update only, leave entries whose chunk is missing)."""
    chunks = live_chunks(services)
    current = registered_disks(services)
    named = {d.name: d for d in disks}
    actions = []
    wanted = set()
    for disk in disks:
        chunk = chunks.get((disk.host, disk.chunk))
        have = current.get(disk.name)
        if chunk is not None:
            attrs = desired(disk, chunk)
        elif disk.replicas and (remove or have is not None):
            wanted.add(disk.name)  # kept, whatever happens: it holds the record
            if not remove:
                continue  # failing over waits, as removing does
            attrs = failover(disk, have, named, chunks)
            if have is None and "down" in attrs:
                continue  # nothing to record yet: down, with no entry, as any disk
        else:
            continue  # its chunk is not live: the disk is not offered (removed below)
        wanted.add(disk.name)
        if have is None:
            actions.append(Action("add", disk.name, tuple(attrs.items())))
        elif have.attrs != attrs:
            # an attribute that must go cannot be unset in place: replace the entry
            op = "update" if set(have.attrs) <= set(attrs) else "replace"
            actions.append(Action(op, disk.name, tuple(attrs.items())))
    for name in sorted(set(current) - wanted) if remove else ():
        actions.append(Action("remove", name))
    return actions


@dataclass
class Target:
    """An empty chunk that will become disk `name` (a new disk is named when chosen)."""

    name: str
    host: str
    chunk: str
    addr: str
    capacity: int
    named: bool  # the ndb file named it before this load


def is_cpu_disk(chunk: Service) -> bool:
    """Whether a live chunk is a cpu node's output chunk (registered with cpudisk 1)."""
    return chunk.attrs.get("cpudisk", "0") not in ("", "0")


CPU_DISK = re.compile(r"d(\d+)\.cpu")


def cpu_disks_to_name(named: list[NamedDisk], services: list[Service]) -> list[Target]:
    """The cpu nodes' output chunks the ndb file does not name yet, each with the next
    free dN.cpu name, in (host, chunk) order: refresh appends them to the file, so that
    the ndb file has one writer and every disk one name."""
    taken = {(d.host, d.chunk) for d in named}
    numbers = [int(m.group(1)) for d in named if (m := CPU_DISK.fullmatch(d.name))]
    number = max(numbers, default=-1) + 1
    new = []
    for (host, chunk_id), chunk in sorted(live_chunks(services).items()):
        if is_cpu_disk(chunk) and (host, chunk_id) not in taken:
            new.append(Target(f"d{number}.cpu", host, chunk_id, chunk.name,
                              int(chunk.attrs.get("size", 0)), False))
            number += 1
    return new


def is_empty(chunk: Service) -> bool:
    """Whether a live chunk holds nothing but its header."""
    return int(chunk.attrs.get("used", HEADER_SIZE + 1)) <= HEADER_SIZE


def app_pattern(app: str) -> re.Pattern:
    """Matches the names of the application's disks, dN.APP, with N as group 1."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", app):
        raise LoadError(f"application name {app!r}: use letters, digits, '-' and '_' only")
    return re.compile(rf"d(\d+)\.{re.escape(app)}")


@dataclass
class LoadPlan:
    """Where a load may put files: targets in order, the number of the next new disk, and
    the application's disks that already hold files (to be listed, so files already there
    are not loaded again)."""

    targets: list[Target]
    next_number: int
    filled: list[tuple[NamedDisk, Service]]


def plan_load(named: list[NamedDisk], services: list[Service], app: str) -> LoadPlan:
    """Choose the chunks a load of app fills.  A disk of app whose chunk is not served is
    an error: what it holds cannot be known, so files on it could be loaded twice."""
    pattern = app_pattern(app)
    chunks = live_chunks(services)
    taken = {(d.host, d.chunk) for d in named}
    numbered, numbers, filled = [], [], []
    for disk in named:
        match = pattern.fullmatch(disk.name)
        if not match:
            continue
        numbers.append(int(match.group(1)))
        chunk = chunks.get((disk.host, disk.chunk))
        if chunk is None:
            raise LoadError(f"disk {disk.name} ({disk.host}!{disk.chunk}) is named for {app} "
                            f"but its chunk is not served, so load cannot tell which files "
                            f"it holds: start node {disk.host}, or remove {disk.name} from "
                            "the ndb file if it is gone for good, and load again")
        if is_empty(chunk):
            numbered.append((int(match.group(1)), Target(
                disk.name, disk.host, disk.chunk, chunk.name, int(chunk.attrs["size"]), True)))
        else:
            filled.append((disk, chunk))
    targets = [t for _, t in sorted(numbered, key=lambda p: p[0])]

    def order(chunk: Service):
        number = re.fullmatch(r"chunk(\d+)", chunk.attrs.get("id", ""))
        return (int(number.group(1)) if number else 0, chunk.attrs.get("host", ""))

    by_host: dict[str, list[Service]] = {}
    free = [c for key, c in chunks.items()
            if key not in taken and is_empty(c) and not is_cpu_disk(c)]
    for chunk in sorted(free, key=order):
        by_host.setdefault(chunk.attrs["host"], []).append(chunk)
    while any(by_host.values()):
        for host in sorted(by_host):
            if by_host[host]:
                chunk = by_host[host].pop(0)
                targets.append(Target("", host, chunk.attrs["id"], chunk.name,
                                      int(chunk.attrs["size"]), False))
    return LoadPlan(targets, max(numbers, default=-1) + 1, filled)


def not_yet_loaded(items: list, present: set) -> list:
    """The items whose (path, size, whole-second mtime) is not on a disk already: a file
    loaded before keeps its path, size and modification time (rsync's quick check)."""
    return [item for item in items
            if (item.path, item.size, _seconds(item.mtime)) not in present]


def _seconds(mtime: float | None) -> int | None:
    return None if mtime is None else int(mtime)


REPLICA_NAME = re.compile(r"(.+)\.r(\d+)")


def replica_names(disk: str, taken: set, count: int) -> list[str]:
    """The next `count` free names for replicas of disk: d0.mbox.r1, d0.mbox.r2, ...  A
    replica's name is its master's plus `.rN`, so no two applications' can meet."""
    names, number = [], 1
    while len(names) < count:
        name = f"{disk}.r{number}"
        if name not in taken:
            names.append(name)
        number += 1
    return names


def place_replicas(masters: list[tuple[str, str, list[str]]], spare: list[Target],
                   count: int) -> tuple[dict, list[str]]:
    """Choose empty chunks for the replicas of each (disk, master's host, hosts holding its
    replicas already) so that the disk has `count` copies on other hosts than its master's
    and each other's; a host with more spare chunks is taken first, so the replicas spread.
    Returns ({disk: [Target]}, a message for each disk short of replicas)."""
    left = [t for t in spare if not t.named]
    chosen, short = {}, []
    for disk, host, have in masters:
        used = {host, *have}
        picks = []
        while len(have) + len(picks) < count:
            free = {}
            for target in left:
                if target.host not in used:
                    free.setdefault(target.host, []).append(target)
            if not free:
                break
            best = max(sorted(free), key=lambda h: len(free[h]))
            pick = free[best][0]
            left.remove(pick)
            picks.append(pick)
            used.add(best)
        chosen[disk] = picks
        if len(have) + len(picks) < count:
            short.append(f"{disk} has {len(have) + len(picks)} of {count} replicas: no empty "
                         f"chunk is free on another node than {', '.join(sorted(used))}")
    return chosen, short


def unfollowing(disks: list[NamedDisk], services: list[Service]) -> list[tuple[str, str]]:
    """(address, master) of each live chunk the ndb file names as a replica that does not
    follow that master (registered without `replicaof MASTER`): a master demoted by
    `disks promote` whose node serves it again, or a replica named by hand."""
    chunks = live_chunks(services)
    named = {d.name: d for d in disks}
    out = []
    for disk in disks:
        for name in disk.replicas:
            copy = named.get(name)
            chunk = chunks.get((copy.host, copy.chunk)) if copy is not None else None
            if chunk is not None and not is_cpu_disk(chunk) and \
                    chunk.attrs.get("replicaof") != disk.master:
                out.append((chunk.name, disk.master))
    return out
