"""Seeing a job run: a progress line on a terminal, and the job's registry entry, kept
current while it runs and kept (persist 1) with its outcome afterwards, so that any client
(`geryon jobs`, the web page) can follow it with no state of its own."""

import asyncio
import logging
import time

from geryon.errors import GeryonError
from geryon.mapreduce.job import GERYON
from geryon.mapreduce.tasks import Job
from geryon.registry.client import Registrar, query

log = logging.getLogger("geryon.mapreduce")

KEEP = 20  # finished jobs whose entries the registry keeps
ENTRY_EVERY = 1.0


def entry_name(job: str) -> str:
    return f"mapreduce.{job}"


def megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def bytes_moved(job: Job) -> tuple[int, int]:
    """(bytes the maps read, bytes the job wrote) so far, from the winners' reports."""
    counters = job.counters()
    read = counters.get((GERYON, "map input bytes"), 0)
    wrote = sum(sum(t.winner.sizes) for t in job.maps if t.winner)
    wrote += counters.get((GERYON, "reduce output bytes"), 0)
    return read, wrote


def summary(job: Job, now: float, since: float) -> dict:
    """What a progress line and the registry entry show."""
    phase = job.phase
    counts = job.counts(job.maps if phase == "map" else job.reduces)
    read, wrote = bytes_moved(job)
    seconds = max(now - since, 1e-6)
    return {"phase": phase, **counts, "in": read, "out": wrote,
            "rate": read / seconds, "elapsed": now - job.started}


def progress_line(name: str, s: dict, status: str = "") -> str:
    text = (f"{name}  {s['phase']} {s['done']}/{s['total']} done, {s['running']} running, "
            f"{s['failed']} failed  |  in {megabytes(s['in'])}, out {megabytes(s['out'])}, "
            f"{megabytes(s['rate'])}/s  |  {s['elapsed']:.0f}s")
    return text + (f"  {status}" if status else "")


class Progress:
    """A line on a terminal, redrawn in place (nothing when the stream is no terminal)."""

    def __init__(self, stream, every: float = 0.2):
        self.stream = stream
        self.on = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every
        self.last = 0.0
        self.width = 0

    def show(self, line: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (not force and now - self.last < self.every):
            return
        self.last = now
        self.stream.write("\r" + line[:160].ljust(self.width) + "\r")
        self.width = min(len(line), 160)
        self.stream.flush()

    def clear(self) -> None:
        if self.on and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


class JobEntry:
    """The job's registry entry: `mapreduce.JOB svc mapreduce job JOB state running phase
    map done 3 total 4 ...`, re-registered after a registry restart (Registrar)."""

    def __init__(self, config, identity, name: str):
        self.name = entry_name(name)
        self.job = name
        self.registrar = Registrar(config, identity)
        self.task = None
        self.last = 0.0
        self.shown: dict = {}

    async def start(self, attrs: dict) -> None:
        attrs = {"svc": "mapreduce", "job": self.job, "state": "running", **attrs}
        await self.registrar.add(self.name, {k: str(v) for k, v in attrs.items()})
        self.task = asyncio.create_task(self.registrar.run())

    async def update(self, attrs: dict, force: bool = False) -> None:
        now = time.monotonic()
        attrs = {k: str(v) for k, v in attrs.items()}
        if attrs == self.shown or (not force and now - self.last < ENTRY_EVERY):
            return
        self.last, self.shown = now, attrs
        try:
            await self.registrar.update(self.name, attrs)
        except GeryonError as err:  # the registry is away: the Registrar registers again
            log.info("job entry %s: %s", self.name, err)

    async def finish(self, attrs: dict) -> None:
        """Keep the entry with the job's outcome (persist 1), and only the last KEEP."""
        for _ in range(50):  # a registry coming back: wait for the entry to be held again
            if self.name in self.registrar.files:
                break
            await asyncio.sleep(0.1)
        try:
            await self.update({**attrs, "persist": "1"}, force=True)
            await self.registrar.remove(self.name)  # the file closes: the entry is kept
            await self._prune()
        except GeryonError as err:
            log.warning("job entry %s could not be kept: %s", self.name, err)

    async def _prune(self) -> None:
        client = self.registrar.client
        if client is None:
            return
        kept = [s for s in await query(client, "svc", "mapreduce")
                if s.attrs.get("state") != "running" and s.attrs.get("persist") == "1"]
        kept.sort(key=lambda s: float(s.attrs.get("started", "0") or 0), reverse=True)
        for service in kept[KEEP:]:
            try:
                await client.remove("/" + service.name)
            except GeryonError as err:
                log.info("pruning %s: %s", service.name, err)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, GeryonError, OSError):
                pass
        await self.registrar.close()
