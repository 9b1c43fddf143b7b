"""The mapreduce driver: runs a job's tasks on the cluster's cpus with rcpu, and keeps
going through what goes wrong (docs/mapreduce.md).

Theory of operation.  The rules live in geryon.mapreduce.tasks, a pure table rebuilt
from events; this module is the loop around it.  Each turn of the loop it

1. asks the registry for the live cpus (dialling it again, with the one Backoff, when a
   restart cut the connection; a job waits out a registry that is away);
2. checks the nodes holding winning output the job still needs: one that is no longer
   registered and does not answer a dial is gone, and its outputs are `lost`, so those
   tasks run again (a reduce that fails is checked the same way first, and a failure
   caused by a lost input is not counted against it);
3. stops attempts past the timeout (counted), and those whose task another attempt won;
4. starts what the Job plans, one asyncio task per attempt, each an rcpu run whose
   stderr streams into a Reporter;
5. waits for an attempt to end or half a second, and turns how each ended into events.

Every event is appended to the job's file before it is applied, so a driver that crashes
is carried on by `resume`: its attempts died with its connections (a cpu kills a block
whose caller goes away, and keeps nothing it wrote), so they are marked stopped and only
committed work counts.
"""

import asyncio
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field

import asyncssh

from geryon.config import Config
from geryon.errors import GeryonError
from geryon.mapreduce.job import (JobError, JobSpec, Reporter, cleanup_block, copy_block,
                                  map_block, new_job_name, part_path, reduce_block)
from geryon.mapreduce.parts import PartReader
from geryon.mapreduce.progress import (JobEntry, Progress, entry_name, progress_line,
                                       summary)
from geryon.mapreduce.state import JobDir, JobWriter
from geryon.mapreduce.tasks import Cpu, Job, Start, Task
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError
from geryon.rcpu.client import Rcpu, RcpuError
from geryon.registry.client import dial_registry, parse_service
from geryon.retry import Backoff

log = logging.getLogger("geryon.mapreduce")

TICK = 0.5            # seconds between looks at the cluster when nothing ends
CPU_EVERY = 2.0       # seconds between cpu listings
NO_CPU_LIMIT = 120.0  # seconds a job waits for a cpu (or a registry) before failing
COPIES_AT_ONCE = 2    # parts copied to a second node at once
PHASE_WORDS = {"map": "back to the map phase: a map's output must be made again",
               "reduce": "every map is done: the reduce phase",
               "finishing": "every reduce is done: checking the parts and cleaning up"}
DOES_NOT_FIT = re.compile(r"left (\d+) bytes on (\S+), which has (\d+) free")


@dataclass
class JobResult:
    """How a job ended: its parts (partition, disk, path) in order, its counters, and for
    a failed job which task failed, where and why."""

    name: str
    state: str
    parts: list[tuple[int, str, str]] = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    elapsed: float = 0.0
    why: str = ""
    stderr: str = ""
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "done"

    @property
    def disks(self) -> list[str]:
        """The disks holding the parts, each once, in partition order."""
        return list(dict.fromkeys(disk for _, disk, _ in self.parts))

    def check(self) -> "JobResult":
        if not self.ok:
            raise JobError(f"job {self.name} failed: {self.why}")
        return self


def result_of(job: Job, log_path: str = "") -> JobResult:
    failed = [a for t in job.tasks.values() for a in t.attempts if a.state == "failed"]
    last = max(failed, key=lambda a: a.ended, default=None)
    return JobResult(job.spec.name, job.outcome or "stopped", job.parts(), job.counters(),
                     (job.ended or time.time()) - job.started, job.why,
                     last.stderr if last is not None and job.outcome == "failed" else "",
                     log_path)


class MapReduce:
    """Runs mapreduce jobs on the cluster.

        result = await MapReduce(config).run("idx /n/d?.mbox/*/*/*", "agg",
                                             ["d0.mbox", "d1.mbox"], R=4)
        print(result.name, result.disks)
    """

    def __init__(self, config: Config | None = None, identity: Identity | None = None, *,
                 progress=None, verbose: bool = False):
        self.config = config or Config.load()
        self.identity = identity or Identity.load()
        self.progress = progress if progress is not None else Progress(None)
        self.verbose = verbose

    async def run(self, map: str, reduce: str, disks, *, R: int = 0, combiner: str = "",
                  timeout: float = 0, attempts: int = 4, slots: int = 0, name: str = "",
                  hash: str = "xxh3", backups: bool = True) -> JobResult:
        """Run a job to its end; R=0 takes one partition per cpu.  A job that fails
        returns a failed JobResult (`.check()` raises); errors before it starts raise."""
        disks = tuple(d[3:] if d.startswith("/n/") else d for d in disks)
        async with Rcpu(self.config, self.identity) as rcpu:
            if not R:
                R = max(1, len(await rcpu.cpus()))
            spec = JobSpec(name or new_job_name(), map, reduce, disks, R, combiner, hash,
                           float(timeout), attempts, slots, backups)
            job_dir = JobDir.create(spec)
            return await self._drive(rcpu, job_dir)

    async def resume(self, name: str) -> JobResult:
        """Carry on a job from its committed tasks (after the driver's crash)."""
        job_dir = JobDir.of(name)
        job = job_dir.job()
        if job.outcome:
            return result_of(job, str(job_dir.path / "log"))
        async with Rcpu(self.config, self.identity) as rcpu:
            return await self._drive(rcpu, job_dir)

    async def remove(self, name: str, say=log.warning) -> list[str]:
        """Remove a job that is not running: its files on every cpu disk (parts, copies,
        whatever a failure left), its registry entry, and its state here once nothing is
        left on a disk.  Returns the disks that still hold its files (their nodes away:
        remove it again when they are back)."""
        job_dir = JobDir.of(name)
        job = job_dir.job()
        if job_dir.locked():
            raise JobError(f"job {name} is running; stop its driver first")
        async with Rcpu(self.config, self.identity) as rcpu:
            cpus = [Cpu(s.name, s.attrs.get("host", s.name), 1) for s in await rcpu.cpus()]
            left = await clean_disks(rcpu, name, job.written(), cpus, True, say)
            try:
                await rcpu.registry.remove("/" + entry_name(name))
            except GeryonError:
                pass  # no entry kept for it (or the registry dropped it)
        if not left:
            shutil.rmtree(job_dir.path)
        return left

    async def _drive(self, rcpu: Rcpu, job_dir: JobDir) -> JobResult:
        writer = JobWriter(job_dir)
        try:
            run = JobRun(self, rcpu, job_dir.job(), writer)
            return await run.run()
        finally:
            writer.close()


class JobRun:
    """One driver's run of a job, from start or resume to its end."""

    def __init__(self, owner: MapReduce, rcpu: Rcpu, job: Job, writer: JobWriter):
        self.owner, self.rcpu, self.job, self.writer = owner, rcpu, job, writer
        self.spec: JobSpec = job.spec
        self.cpus: list[Cpu] = []
        self.cpus_at = 0.0
        self.cpu_wanted_since = time.time()
        self.registry_backoff = Backoff(initial=0.3, factor=1.5, cap=3.0)
        self.registry_retry_at = 0.0
        self.running: dict[tuple[str, int], asyncio.Task] = {}
        self.reporters: dict[tuple[str, int], object] = {}
        self.stopping: dict[tuple[str, int], tuple[str, bool]] = {}
        self.checked: dict[str, float] = {}
        self.gone: set[str] = set()           # nodes found gone (until they register)
        self.sources: dict[tuple[str, int], set[str]] = {}
        self.entry = JobEntry(owner.config, owner.identity, self.spec.name)
        self.since = time.time()

    # ---- events ------------------------------------------------------------------------

    def record(self, event: dict, text: str = "") -> None:
        before = self.job.phase
        self.writer.record(event)
        self.job.apply(event)
        if text:
            self.say(text)
        after = self.job.phase
        if after != before and after in PHASE_WORDS:
            self.say(PHASE_WORDS[after])

    def say(self, text: str) -> None:
        self.writer.log(text)
        if self.owner.verbose:
            self.owner.progress.clear()
            log.warning("%s: %s", self.spec.name, text)

    # ---- the loop ----------------------------------------------------------------------

    async def run(self) -> JobResult:
        now = time.time()
        resumed = bool(self.writer.dir.events())
        for event in self.job.abandon_running(now, "stopped with the driver that ran it"):
            self.record(event, f"{self.job.tasks[event['task']].label()} attempt "
                               f"{event['n']}: stopped with the driver that ran it")
        self.say(("resumed " if resumed else "started ") + self._describe())
        await self._resolve_inputs()
        await self.entry.start(self._entry_attrs())
        try:
            while not self.job.outcome:
                await self._look()
                if self.job.outcome:
                    break
                if self.job.phase == "finishing":
                    await self._finish()
                    continue
                self._stop_what_is_done()
                live = [c for c in self.cpus if c.host not in self.gone]
                for start in self.job.plan(live, time.time()):
                    await self._launch(start)
                await self._wait()
                await self._show()
            if self.job.outcome == "failed":
                await self._stop_all()
                await self._clean(everything=True)
        finally:
            await self._stop_all()
            self.owner.progress.clear()
            await self._keep_entry()
            await self.entry.close()
        return result_of(self.job, str(self.writer.dir.path / "log"))

    def _describe(self) -> str:
        s = self.spec
        return (f"job {s.name}: map {s.map!r} reduce {s.reduce!r}"
                f"{f' combiner {s.combiner!r}' if s.combiner else ''} on "
                f"{' '.join(s.disks)}, R={s.partitions}")

    async def _show(self) -> None:
        now = time.time()
        s = summary(self.job, now, self.since)
        # the last `reporter:status:` of a running attempt, as it comes
        latest = max(self.reporters.values(), key=lambda r: r.status_at, default=None)
        status = latest.status if latest is not None else ""
        self.owner.progress.show(progress_line(self.spec.name, s, status))
        await self.entry.update(self._entry_attrs(s, status))

    def _entry_attrs(self, s: dict | None = None, status: str = "") -> dict:
        s = s or summary(self.job, time.time(), self.since)
        return {"phase": s["phase"], "done": s["done"], "total": s["total"],
                "running": s["running"], "failed": s["failed"], "in": s["in"],
                "out": s["out"], "started": int(self.job.started),
                "user": self.owner.config.name or "", "status": status or "-"}

    async def _keep_entry(self) -> None:
        outcome = self.job.outcome or "stopped"
        attrs = {**self._entry_attrs(), "state": outcome}
        if self.job.why:
            attrs["why"] = self.job.why[:300]
        if outcome == "done":
            attrs["parts"] = " ".join(result_of(self.job).disks)[:1000]
        if outcome == "stopped":
            return  # live: it goes with us, and comes back with --resume
        await self.entry.finish(attrs)

    # ---- the cluster -------------------------------------------------------------------

    async def _registry_ok(self) -> bool:
        """Dial the registry again if its connection is gone (not sooner than the
        backoff allows); whether it is there now."""
        registry = self.rcpu.registry
        if registry is not None and not registry.conn.is_closed():
            return True
        now = time.time()
        if now < self.registry_retry_at:
            return False
        try:
            if registry is not None:
                await registry.close()
            self.rcpu.registry = await dial_registry(self.owner.config, self.owner.identity)
        except GeryonError as err:
            self.registry_retry_at = now + self.registry_backoff.delay()
            self.say(f"registry: {err}; dialling again")
            return False
        self.registry_backoff.reset()
        self.say("registry: connected again")
        self.cpus_at = 0.0
        return True

    async def _look(self) -> None:
        now = time.time()
        if now - self.cpus_at >= CPU_EVERY and await self._registry_ok():
            try:
                services = await self.rcpu.cpus()
            except RcpuError:
                services = []
            except GeryonError as err:
                self.say(f"listing cpus: {err}")
                services = None
            if services is not None:
                self.cpus_at = now
                self.cpus = [Cpu(s.name, s.attrs.get("host", s.name),
                                 self.spec.slots or max(1, int(s.attrs.get("ncpu", "1") or 1)))
                             for s in services]
        if self.cpus:
            self.cpu_wanted_since = now
        elif now - self.cpu_wanted_since > NO_CPU_LIMIT:
            self._end("failed", f"no cpu was registered (or the registry could not be "
                                f"reached) for {NO_CPU_LIMIT:.0f} s")
            return
        registered = {c.host for c in self.cpus}
        for host in sorted(self.gone & registered):  # registered again: back, or stale?
            if now - self.checked.get(host, 0.0) >= CPU_EVERY:
                self.checked[host] = now
                if await self._alive(host):
                    self.gone.discard(host)
                    self.say(f"node {host} is back")
        running = {a.host for a in self.job.running()}
        for host in sorted((self.job.needed_hosts() | running) - registered):
            await self._check_host(host)

    async def _alive(self, host: str) -> bool:
        """Whether a node answers: its cpu service, at the address an attempt used."""
        addrs = {c.name for c in self.cpus if c.host == host}
        addrs |= {a.cpu for t in self.job.tasks.values() for a in t.attempts if a.host == host}
        for addr in addrs:
            try:
                client = await Client.connect(addr, self.owner.identity, timeout=3.0)
            except RemoteError:
                continue
            await client.close()
            return True
        return False

    async def _check_host(self, host: str, force: bool = False) -> bool:
        """Whether the node is there; if it is gone, its outputs are lost."""
        now = time.time()
        if host in self.gone and not force:
            return False
        if not force and now - self.checked.get(host, 0.0) < CPU_EVERY:
            return True
        self.checked[host] = now
        if await self._alive(host):
            return True
        why = f"node {host} is gone"
        self.gone.add(host)
        for a in self.job.running():  # its connection may not have ended yet
            if a.host == host:
                self._stop((a.task, a.number), f"its cpu node {host} is gone", True)
        for event in self.job.lost_on(host, why, self.gone):
            self.record(event, f"{self.job.tasks[event['task']].label()}: its output went "
                               f"with node {host}; it runs again")
        return False

    async def _resolve_inputs(self) -> None:
        """Which nodes hold each input disk (master or replica), for choosing cpus."""
        if not await self._registry_ok():
            return
        for task in self.job.maps:
            hosts = set()
            name = task.input
            for _ in range(2):  # the disk, then its replica
                try:
                    line = await self.rcpu.registry.read(f"/{name}")
                    entry = parse_service(line.decode().strip())
                except GeryonError:
                    break
                hosts.add(entry.attrs.get("host", ""))
                name = entry.attrs.get("replica", "")
                if not name:
                    break
            self.job.prefer[task.id] = hosts - {""}

    # ---- attempts ----------------------------------------------------------------------

    async def _launch(self, start: Start) -> None:
        task, cpu, n = start.task, start.cpu, start.number
        try:
            if task.kind == "map":
                inputs = [task.input]
                out = await self.rcpu.finddisk(cpu.host, inputs)
                block = map_block(self.spec, task.index, n)
            else:
                sources = self.job.map_inputs()
                out = await self._parts_disk(cpu.host)
                inputs = [d for d in dict.fromkeys(d for d, _ in sources) if d != out]
                block = reduce_block(self.spec, task.index, n, sources)
        except GeryonError as err:
            self.say(f"cannot start {task.label()} on {cpu.host}: {err}")
            self.cpus_at = 0.0
            return
        if not out:
            self.say(f"cpu {cpu.host} has no output disk named yet (run `geryon "
                            "refresh`); passing it over")
            self.cpus = [c for c in self.cpus if c.name != cpu.name]
            return
        self.record({"ev": "start", "task": task.id, "n": n, "cpu": cpu.name,
                     "host": cpu.host, "disk": out, "backup": start.backup, "t": time.time()},
                    f"{task.label()} attempt {n}{' (backup)' if start.backup else ''} "
                    f"started on {cpu.host}, writing on {out}")
        key = (task.id, n)
        if task.kind == "reduce":  # the nodes whose map outputs it reads
            self.sources[key] = {t.winner.host for t in self.job.maps}
        reporter = self.reporters[key] = Reporter()
        self.running[key] = asyncio.create_task(
            self._attempt(block, inputs, cpu, out, reporter))

    async def _parts_disk(self, host: str) -> str:
        """The output disk for a part on host: one the maps did not write on when the node
        has one (a node has two cpu chunks by default), so that the map-output disks a
        reduce is given hold map outputs only, not every part of every job before; else
        the host's first."""
        maps = {d for d, _ in self.job.map_inputs()}
        return (await self.rcpu.finddisk(host, maps)) or await self.rcpu.finddisk(host, ())

    async def _attempt(self, block, inputs, cpu: Cpu, out: str, reporter):
        """Run one attempt: ('done', CompletedBlock) or ('error', started, message)."""
        started = []
        # stderr is read by the reporter as it comes (it keeps a bounded tail), not kept
        nowhere = os.open(os.devnull, os.O_WRONLY)
        try:
            done = await self.rcpu.run(block, inputs, cpu=cpu.name, out=out, stderr=nowhere,
                                       on_start=lambda *a: started.append(True),
                                       on_stderr=reporter.feed)
        except (GeryonError, asyncssh.Error, OSError) as err:  # the connection was lost
            return "error", bool(started), str(err) or err.__class__.__name__
        finally:
            os.close(nowhere)
            reporter.close()
        return "done", done

    async def _wait(self) -> None:
        if not self.running:
            await asyncio.sleep(TICK)
            return
        done, _ = await asyncio.wait(set(self.running.values()), timeout=TICK,
                                     return_when=asyncio.FIRST_COMPLETED)
        for key, future in list(self.running.items()):
            if future in done:
                del self.running[key]
                await self._ended(key, future)

    def _stop(self, key, why: str, counted: bool) -> None:
        future = self.running.get(key)
        if future is not None and key not in self.stopping:
            self.stopping[key] = (why, counted)
            future.cancel()

    def _stop_what_is_done(self) -> None:
        for a in self.job.superfluous():
            self._stop((a.task, a.number), "another attempt finished first", False)
        for a in self.job.overdue(time.time()):
            self._stop((a.task, a.number), f"timed out after {self.spec.timeout:g} s", True)

    async def _stop_all(self) -> None:
        why = "stopped: the job ended" if self.job.outcome else "stopped with the driver"
        for key in list(self.running):
            self._stop(key, why, False)
        for key, future in list(self.running.items()):
            try:
                await future
            except asyncio.CancelledError:
                pass
            del self.running[key]
            await self._ended(key, future)

    async def _ended(self, key, future) -> None:
        task_id, n = key
        task = self.job.tasks[task_id]
        attempt = self.job.attempt(task, n)
        reporter = self.reporters.pop(key)
        sources = self.sources.pop(key, set())
        now = time.time()
        base = {"task": task_id, "n": n, "t": now}
        where = f"{task.label()} attempt {n} on {attempt.host}"
        if future.cancelled():
            why, counted = self.stopping.pop(key, ("stopped", False))
            self.record({"ev": "fail", **base, "why": why, "counted": counted,
                         "stderr": reporter.stderr}, f"{where}: {why}")
            if counted:
                self._after_failure(task, attempt)
            return
        self.stopping.pop(key, None)
        outcome = future.result()
        if outcome[0] == "error":
            _, started, message = outcome
            if not started:  # nothing ran: the cpu, not the task, is at fault
                self.record({"ev": "fail", **base, "why": f"could not start: {message}",
                             "counted": False}, f"{where}: could not start: {message}")
                self.cpus = [c for c in self.cpus if c.name != attempt.cpu]
                self.cpus_at = 0.0
                return
            why = f"its connection failed: {message}"
            self.record({"ev": "fail", **base, "why": why, "counted": True,
                         "stderr": reporter.stderr}, f"{where}: {why}")
            self._after_failure(task, attempt)
            return
        done = outcome[1]
        counters = {f"{g},{k}": v for (g, k), v in reporter.counters.items()}
        if done.returncode == 0:
            if task.kind == "map" and len(reporter.sizes) != self.spec.partitions:
                why = "it exited 0 but did not report its partitions' sizes"
            else:
                self.record({"ev": "done", **base, "sizes": reporter.sizes,
                             "counters": counters},
                            f"{where}: done in {now - attempt.started:.1f} s")
                return
        else:
            why = describe_failure(done.returncode, done.exit_signal, reporter.stderr)
        counted = True
        if task.kind == "reduce":
            gone = [h for h in sorted(sources) if h in self.gone
                    or not await self._check_host(h, force=True)]
            if gone:
                why, counted = f"{why}; its input went with node {', '.join(gone)}", False
        if counted and not await self._alive(attempt.host):
            why = f"{why}; its cpu node {attempt.host} is gone"
            self.cpus = [c for c in self.cpus if c.host != attempt.host]
        self.record({"ev": "fail", **base, "why": why, "counted": counted,
                     "stderr": reporter.stderr},
                    f"{where}: {why}" + (f"\n  stderr: {reporter.stderr.strip()[-300:]}"
                                         if reporter.stderr.strip() else ""))
        if counted:
            self._after_failure(task, attempt)

    def _after_failure(self, task: Task, attempt) -> None:
        self.cpus_at = 0.0
        if self.job.exhausted(task) and not self.job.outcome:
            said = attempt.stderr.strip().splitlines()
            self._end("failed", f"{task.label()} failed {task.failures} times; the last "
                                f"attempt, on {attempt.host}: {attempt.why}"
                                + (f": {said[-1][:200]}" if said else ""))

    def _end(self, state: str, why: str = "") -> None:
        self.record({"ev": "end", "state": state, "why": why, "t": time.time()},
                    f"job {state}" + (f": {why}" if why else ""))

    # ---- the end -----------------------------------------------------------------------

    async def _finish(self) -> None:
        """Every reduce has a winner: check the parts are still there, clean up, end."""
        self._stop_what_is_done()
        for host in sorted({a.host for t in self.job.reduces for a in [t.winner]}):
            await self._check_host(host, force=True)
        if self.job.phase != "finishing":
            return
        # copies first: until the clean-up, a part lost with its node can be made again
        await self._copy_parts()
        await self._clean(everything=False)
        self.record({"ev": "cleaned", "t": time.time()})
        self._end("done")

    async def _copy_parts(self) -> None:
        """A copy of each part on another node's cpu disk, so that the result outlives
        the node that made it (cpu disks have no replicas).  The driver reads the part and
        a block on the other node stores it; a part that cannot be copied (a one-node
        cluster, a copy that fails) is said in the log and the job still completes."""
        todo = [t for t in self.job.reduces if not t.copies]
        if not todo:
            return
        if not await self._registry_ok():
            self.say(f"parts not copied: the registry cannot be reached; {len(todo)} have "
                     "one copy only")
            return
        hosts = sorted({c.host for c in self.cpus if c.host not in self.gone})
        room = asyncio.Semaphore(COPIES_AT_ONCE)  # each passes through here, on disk

        async def one(task):
            async with room:
                return await self._copy_part(task, hosts)

        results = await asyncio.gather(*(one(t) for t in todo))
        copied = sum(results)
        self.say(f"parts copied to a second node: {copied} of {len(todo)}"
                 + ("" if copied == len(todo) else " (the others have one copy only)"))

    async def _copy_part(self, task: Task, hosts: list[str]) -> bool:
        winner = task.winner
        others = [h for h in hosts if h != winner.host]
        if not others:
            return False
        host = others[task.index % len(others)]
        cpu = next(c for c in self.cpus if c.host == host)
        path = part_path(self.spec.name, task.index, winner.number)
        local = self.writer.dir.path / f"copy-{task.id}"
        try:
            disk = await self._parts_disk(host)
            if not disk:
                raise JobError(f"{host} has no output disk named yet")
            async with PartReader(self.rcpu.registry, self.owner.identity) as reader:
                with open(local, "wb") as f:
                    size = await reader.copy(task.index, path, [winner.disk], f)
            with open(local, "rb") as f:
                done = await self.rcpu.run(copy_block(path, size), (), cpu=cpu.name,
                                           out=disk, stdin=f.fileno())
            if done.returncode != 0:
                raise JobError(describe_failure(done.returncode, done.exit_signal,
                                                done.stderr.decode(errors="replace")))
        except (GeryonError, asyncssh.Error, OSError) as err:
            self.say(f"{task.label()}: its part could not be copied to {host}: {err}")
            return False
        finally:
            local.unlink(missing_ok=True)
        self.record({"ev": "copy", "task": task.id, "n": winner.number, "host": host,
                     "disk": disk, "t": time.time()},
                    f"{task.label()}: part copied to {disk} on {host}")
        return True

    async def _clean(self, everything: bool) -> None:
        """A block on each output disk the job wrote on, removing what is not kept."""
        await clean_disks(self.rcpu, self.spec.name, self.job.written(), self.cpus,
                          everything, self.say)
        self.say("clean-up: " + ("the job's files removed" if everything else
                                 "map outputs and spare parts removed"))


async def clean_disks(rcpu: Rcpu, job: str, written: dict, cpus: list[Cpu],
                      everything: bool, say) -> list[str]:
    """Run a clean-up block (job.cleanup_block) on each (host, disk) of written, on a cpu
    of that host; return the disks that could not be cleaned, each said why."""
    left = []

    async def one(host, disk, paths):
        cpu = next((c for c in cpus if c.host == host), None)
        if cpu is None:
            say(f"clean-up: no cpu on {host} to clean {disk}; left as is")
            left.append(disk)
            return
        try:
            done = await rcpu.run(cleanup_block(job, paths, everything), (), cpu=cpu.name,
                                  out=disk)
        except (GeryonError, asyncssh.Error, OSError) as err:
            say(f"clean-up of {disk} on {host}: {err}")
            left.append(disk)
            return
        if done.returncode != 0:
            say(f"clean-up of {disk} on {host} failed: "
                f"{done.stderr.decode(errors='replace').strip()[-300:]}")
            left.append(disk)

    await asyncio.gather(*(one(host, disk, paths) for (host, disk), paths in written.items()))
    return sorted(left)


def describe_failure(status: int, signal_name: str, stderr: str) -> str:
    """Why an attempt failed, in words."""
    if m := DOES_NOT_FIT.search(stderr):
        return (f"its output ({m[1]} bytes) does not fit on {m[2]}, which has {m[3]} bytes "
                "free; use a combiner, more partitions on more cpus, or larger cpu chunks "
                "(geryon node --cpu-chunk-size)")
    if signal_name:
        return f"killed by signal {signal_name}"
    if status == 255 and not stderr.strip():
        return "status 255 (its cpu may have gone away)"
    return f"exit status {status}"
