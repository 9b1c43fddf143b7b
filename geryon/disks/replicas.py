"""Replicas from where the ndb file is: add them (`load --replicas`, `disks replicate`),
promote one to master (`disks promote`), and compare them with their masters (`disks
check`).  The copying itself is done by the nodes holding replicas (replica.py); this side
names replicas in the ndb file, tells their chunks to follow (`replicate HOST!chunkN`),
waits for them to catch up, and refreshes the registry.
"""

import asyncio
from dataclasses import dataclass
from pathlib import Path

from geryon.disks.cluster import Naming, named_disks, services
from geryon.disks.errors import DiskError
from geryon.disks.names import NamedDisk, live_chunks
from geryon.disks.plan import Target, is_cpu_disk, is_empty, place_replicas, replica_names
from geryon.disks.remote import run
from geryon.ndb.database import Database
from geryon.ns.client import Client

SYNC_WAIT = 300  # seconds a new replica may take to catch up before it is reported


@dataclass
class Placed:
    """A replica made: its name, where it is, and its master disk."""

    name: str
    host: str
    chunk: str
    master: str


async def follow(target: Target, master: NamedDisk, identity=None, keepalive=1.0,
                 wait: float = SYNC_WAIT) -> str:
    """Tell an empty chunk to follow the master's chunk; return once it has caught up."""
    async with await Client.connect(target.addr, identity, keepalive=keepalive) as chunk:
        return (await run(chunk, f"replicate {master.master} {wait:g}")).decode().strip()


async def add_replicas(ndb_path: Path, chosen: dict, named: dict, identity=None,
                       keepalive=1.0) -> list[Placed]:
    """Name each chosen chunk in the ndb file as a replica of its disk, tell it to follow,
    and wait until every one has caught up (DiskError naming those that did not)."""
    naming = Naming(ndb_path)
    taken = set(named)
    placed, jobs = [], []
    for disk, targets in chosen.items():
        master = named[disk]
        for target, name in zip(targets, replica_names(disk, taken, len(targets))):
            taken.add(name)
            target.name = name
            naming.name(target, copy=True)
            naming.add_replica(disk, name)
            placed.append(Placed(name, target.host, target.chunk, disk))
            jobs.append(follow(target, master, identity, keepalive))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    failed = [f"{p.name} ({p.host}!{p.chunk}): {r}" for p, r in zip(placed, results)
              if isinstance(r, BaseException)]
    if failed:
        raise DiskError("replicas named, but not in sync: " + "; ".join(failed) +
                        "; they go on following: see `geryon disks`")
    return placed


def spare_chunks(disks: list[NamedDisk], live: list) -> list[Target]:
    """Empty data chunks the ndb file does not name: where new replicas may go."""
    taken = {(d.host, d.chunk) for d in disks}
    return [Target("", host, chunk_id, chunk.name, int(chunk.attrs.get("size", 0)), False)
            for (host, chunk_id), chunk in sorted(live_chunks(live).items())
            if (host, chunk_id) not in taken and is_empty(chunk) and not is_cpu_disk(chunk)]


def master_of(disks: list[NamedDisk], name: str) -> NamedDisk:
    named = {d.name: d for d in disks}
    disk = named.get(name)
    if disk is None:
        raise DiskError(f"disk {name} is not named in the ndb file")
    if disk.copy:
        owner = next((d.name for d in disks if name in d.replicas), "another disk")
        raise DiskError(f"disk {name} is itself a replica (of {owner}); name the master")
    return disk


async def replicate(registry: Client, ndb_path: Path, name: str, on: str = "",
                    identity=None, keepalive=1.0) -> Placed:
    """Add one replica to disk `name`, on node `on` or the node with most spare chunks
    (never its master's, nor one holding a replica of it already)."""
    disks = named_disks(Database(ndb_path))
    disk = master_of(disks, name)
    named = {d.name: d for d in disks}
    have = [named[r].host for r in disk.replicas if r in named]
    live = await services(registry, "resource", "kfs")
    if (disk.host, disk.chunk) not in live_chunks(live):
        raise DiskError(f"disk {name}: its master {disk.master} is not served; a replica "
                        "copies a live master: start its node first")
    spare = spare_chunks(disks, live)
    if on:
        if on == disk.host or on in have:
            raise DiskError(f"node {on} holds disk {name}'s "
                            f"{'master' if on == disk.host else 'replica'} already; a "
                            "replica goes on another node")
        spare = [t for t in spare if t.host == on]
        if not spare:
            raise DiskError(f"node {on} has no empty chunk that the ndb file does not name: "
                            "add one with `geryon node --new-chunks N`")
    chosen, short = place_replicas([(name, disk.host, have)], spare, len(have) + 1)
    if short:
        raise DiskError(f"{short[0]}; add chunks with `geryon node --new-chunks N`")
    return (await add_replicas(ndb_path, chosen, named, identity, keepalive))[0]


async def promote(registry: Client, ndb_path: Path, name: str, node: str, identity=None,
                  keepalive=1.0) -> str:
    """Make disk name's replica on `node` its master for good: the replica stops following
    and takes writes; the ndb file swaps the two chunks, so the old master, when its node
    serves it again, is the replica (refresh tells it to follow)."""
    disks = named_disks(Database(ndb_path))
    disk = master_of(disks, name)
    named = {d.name: d for d in disks}
    copy = next((named[r] for r in disk.replicas if r in named and named[r].host == node),
                None)
    if copy is None:
        where = ", ".join(f"{r} on {named[r].host}" for r in disk.replicas if r in named)
        raise DiskError(f"disk {name} has no replica on node {node} "
                        f"({'its replicas: ' + where if where else 'it has no replicas'})")
    chunk = live_chunks(await services(registry, "resource", "kfs")).get((copy.host,
                                                                          copy.chunk))
    if chunk is None:
        raise DiskError(f"replica {copy.name} ({copy.master}) is not served; start node "
                        f"{node} first")
    async with await Client.connect(chunk.name, identity, keepalive=keepalive) as served:
        done = await served.run("promote")
    if not done.ok and b"master already" not in done.stderr:
        raise DiskError(f"{copy.master}: promote failed: "
                        f"{done.stderr.decode(errors='replace').strip()}")
    naming = Naming(ndb_path)
    old = disk.master
    naming.set_master(name, copy.master)
    naming.set_master(copy.name, old)
    return f"{name} master {copy.master}; {copy.name} (now {old}) follows it"


@dataclass
class Compared:
    """One replica against its master: same log to the replica's end, or why not."""

    disk: str
    replica: str
    same: bool
    note: str


async def sum_of(addr: str, end: int | None, identity, keepalive) -> tuple[str, int, str]:
    async with await Client.connect(addr, identity, keepalive=keepalive) as chunk:
        words = (await run(chunk, "image-sum" + ("" if end is None else f" {end}"))).split()
    return words[0].decode(), int(words[1]), words[2].decode()


async def check(registry: Client, ndb_path: Path, identity=None,
                keepalive=1.0) -> list[Compared]:
    """Compare every replica with its master: the master's log sum to the replica's end
    must be the replica's own sum (a replica behind its master is a prefix of it)."""
    disks = named_disks(Database(ndb_path))
    named = {d.name: d for d in disks}
    chunks = live_chunks(await services(registry, "resource", "kfs"))
    out = []
    for disk in disks:
        for name in disk.replicas:
            copy = named.get(name)
            master = chunks.get((disk.host, disk.chunk))
            replica = chunks.get((copy.host, copy.chunk)) if copy else None
            if copy is None or master is None or replica is None:
                what = ("not named in the ndb file" if copy is None else
                        f"its master {disk.master} is not served" if master is None else
                        f"it ({copy.master}) is not served")
                out.append(Compared(disk.name, name, False, f"cannot compare: {what}"))
                continue
            log_id, end, theirs = await sum_of(replica.name, None, identity, keepalive)
            try:
                master_log, _, ours = await sum_of(master.name, end, identity, keepalive)
            except DiskError as err:
                out.append(Compared(disk.name, name, False, f"differs: {err}"))
                continue
            behind = int(master.attrs.get("used", end)) - end
            if master_log != log_id:
                out.append(Compared(disk.name, name, False, "differs: another log id "
                                    f"({log_id}, the master's is {master_log})"))
            elif ours != theirs:
                out.append(Compared(disk.name, name, False, f"differs: the first {end} bytes "
                                    f"sum to {theirs}, the master's to {ours}"))
            else:
                out.append(Compared(disk.name, name, True, "same log to its end"
                                    + (f", {behind} bytes behind" if behind > 0 else "")))
    return out
