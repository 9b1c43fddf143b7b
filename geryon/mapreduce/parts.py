"""A finished job's result, read back from the disks holding its parts, and the list of
jobs: those with state here and those the registry knows."""

import time
from dataclasses import dataclass

from geryon.disks.remote import dial_disk
from geryon.errors import GeryonError
from geryon.mapreduce.job import JobError
from geryon.mapreduce.state import JobDir, local_jobs
from geryon.registry.client import query

READ = 1 << 20


async def write_parts(registry, identity, name: str, sink, keepalive: float = 1.0) -> int:
    """Write a done job's parts to sink (a binary file) in partition order; return bytes.
    A part whose disk cannot be reached is read from its copy on another node's disk."""
    job = JobDir.of(name).job()
    if job.outcome != "done":
        state = job.outcome or ("running" if JobDir.of(name).locked() else "stopped")
        raise JobError(f"job {name} is {state}, not done: it has no result to show"
                       + ("; carry it on with `geryon mapreduce --resume " + name + "`"
                          if state == "stopped" else ""))
    total = 0
    async with PartReader(registry, identity, keepalive) as reader:
        for partition, path, disks in job.part_places():
            total += await reader.copy(partition, path, disks, sink)
    sink.flush()
    return total


class PartReader:
    """Reads parts from the disks that hold them, one connection a disk."""

    def __init__(self, registry, identity, keepalive: float = 1.0):
        self.registry, self.identity, self.keepalive = registry, identity, keepalive
        self.clients: dict = {}
        self.unreachable: dict[str, str] = {}  # disk -> why, not dialled again

    async def __aenter__(self) -> "PartReader":
        return self

    async def __aexit__(self, *exc) -> None:
        for client in self.clients.values():
            await client.close()
        self.clients.clear()

    async def copy(self, partition: int, path: str, disks: list[str], sink) -> int:
        """Write the part to sink from the first of its disks that answers; its bytes."""
        failures = []
        for disk in disks:
            if disk in self.unreachable:
                failures.append(f"{disk} ({self.unreachable[disk]})")
                continue
            try:
                if disk not in self.clients:
                    self.clients[disk] = await dial_disk(self.registry, disk, self.identity,
                                                         self.keepalive)
            except GeryonError as err:
                self.unreachable[disk] = str(err)
                failures.append(f"{disk} ({err})")
                continue
            try:
                f = await self.clients[disk].open("/" + path)
            except GeryonError as err:
                failures.append(f"{disk} ({err})")
                continue
            total = 0
            try:  # once a byte is written there is no going back to another copy
                while data := await f.read(READ):
                    sink.write(data)
                    total += len(data)
            finally:
                await f.close()
            return total
        raise JobError(f"part {partition} cannot be read: it is on "
                       + " and ".join(failures))


@dataclass
class JobLine:
    name: str
    state: str
    phase: str
    done: str
    started: float
    elapsed: float
    where: str   # here, or the registry


def local_lines() -> list[JobLine]:
    lines = []
    for job_dir in local_jobs():
        try:
            job = job_dir.job()
        except GeryonError:
            continue
        state = job.outcome or ("running" if job_dir.locked() else "stopped")
        tasks = job.maps if job.phase == "map" else job.reduces
        done = sum(t.winner is not None for t in tasks)
        end = job.ended or time.time()
        lines.append(JobLine(job.spec.name, state, job.phase if not job.outcome else "-",
                             f"{done}/{len(tasks)}", job.started, end - job.started, "here"))
    return lines


async def registry_lines(registry) -> list[JobLine]:
    lines = []
    for s in await query(registry, "svc", "mapreduce"):
        a = s.attrs
        try:
            started = float(a.get("started", "0") or 0)
        except ValueError:
            started = 0.0
        lines.append(JobLine(a.get("job", s.name), a.get("state", "?"),
                             a.get("phase", "?") if a.get("state") == "running" else "-",
                             f"{a.get('done', '?')}/{a.get('total', '?')}", started,
                             time.time() - started if started else 0.0, "registry"))
    return lines


def merge(local: list[JobLine], remote: list[JobLine]) -> list[JobLine]:
    """One line a job, oldest first: what is here of the jobs run from here, what the
    registry says of the others (run elsewhere)."""
    by_name = {line.name: line for line in remote}
    by_name.update({line.name: line for line in local})
    return sorted(by_name.values(), key=lambda line: line.started)
