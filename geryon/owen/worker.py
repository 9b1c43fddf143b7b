"""An Owen worker: dial out to the scheduler, say what this node is and can do, and run
the tasks it is given, as many at once as it has task slots.

Theory of operation.  The worker only dials out (it opens no port) and keeps dialling with
Owen's backoff (1 s +-25%, x1.5, capped at 5 min: geryon.retry).  On each connection it
writes `nodename` and `attrs`, hands in every result it could not hand in before (through
`reconnect`), reads `stoptask`, and runs one fetcher per slot: each holds an SFTP session
of its own with `task` open on it, and reads its next offer there once the slot is free
(wire.py gives the exchange: an offer, then the result with the next read behind it).
A task runs in a process of its own, outside the connection's life: if the connection is
lost meanwhile, the finished result is kept in `<root>/pending/` and handed in through
`reconnect` once connected again, so finished work is never lost.

A task is its type's script, `<root>/<type>.job` (POSIX sh), which defines `runtask` (its
arguments are the task's; its standard input is the task's input) and optionally
`submit` (prints the result; without it the file `result` is the result), `killtask`
(run when the task is stopped) and `exclusive` (the task takes every slot).  Each attempt
gets a fresh working directory, `$work`, holding the task's files, removed afterwards
unless the job keeps it (filesplit -k: failed attempts', -a: all); its stderr is kept in
`<root>/log/`.  A shell that stays up per slot runs it in a subshell (geryon.owen.runner),
so a task costs one fork and the script's own commands: less than `xargs sh -c`.
"""

import asyncio
import io
import itertools
import logging
import os
import platform
import re
import shutil
import tarfile
from pathlib import Path

from geryon import quote
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteFile
from geryon.owen import wire
from geryon.owen.records import format_record
from geryon.owen.runner import Runner, command_line
from geryon.retry import CONNECTION_ERRORS, Backoff, Reconnect

log = logging.getLogger("geryon.owen")

KILL = r""". "$0" && command -v killtask >/dev/null 2>&1 && killtask"""

STDERR_KEPT = 200          # attempts' stderr files kept in <root>/log
WHY_BYTES = 2000           # bytes of stderr sent back with a failure
DESCRIPTION_BYTES = 256 << 20
WRITE = 1 << 19            # bytes of a result per write
_ids = itertools.count(1)


LIBRARY = Path(__file__).parent / "scripts"   # the task scripts shipped with Geryon


def install_script(jobtype: str, root: Path) -> Path:
    """Copy the library's <jobtype>.job into a worker's root (enabling that type)."""
    source = LIBRARY / f"{jobtype}.job"
    if not source.is_file() or "/" in jobtype:
        have = ", ".join(sorted(p.stem for p in LIBRARY.glob("*.job")))
        raise GeryonError(f"no task script {jobtype}.job in the library; it has {have}")
    target = Path(root) / source.name
    shutil.copyfile(source, target)
    return target


def owen_backoff() -> Backoff:
    return Backoff(initial=1.0, factor=1.5, cap=300.0)


def installed_types(root: Path) -> dict[str, bool]:
    """Task type -> whether its script defines `exclusive`, for each <type>.job."""
    out = {}
    for path in sorted(root.glob("*.job")):
        if path.is_file():
            text = path.read_text(errors="replace")
            out[path.stem] = bool(re.search(r"(?m)^\s*exclusive\s*\(\s*\)", text))
    return out


def host_attrs(root: Path, slots: int) -> dict[str, str]:
    """What the scheduler is told about this node."""
    attrs = {"os": platform.system().lower(), "cpu": platform.machine() or "unknown",
             "ncpu": str(slots)}
    try:
        attrs["memory"] = str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        pass
    try:
        attrs["load"] = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        pass
    attrs["cachesize"] = str(shutil.disk_usage(root).free)
    for i, jobtype in enumerate(installed_types(root)):
        attrs[f"jobtype{i}"] = jobtype
    return attrs


class Attempt:
    """One task being run here."""

    def __init__(self, taskid: str, worker_id: str, deadline: int, desc: wire.Description):
        self.taskid, self.worker_id, self.deadline = taskid, worker_id, deadline
        self.desc = desc
        self.work: Path | None = None      # its runner's working directory, once it runs
        self.runner: Runner | None = None
        self.stopped = False


class Worker:
    """A worker node: Worker(root, sched=...).run() until cancelled."""

    def __init__(self, root: Path, *, sched: str = "", name: str = "", slots: int = 0,
                 config: Config | None = None, identity: Identity | None = None,
                 backoff: Backoff | None = None):
        self.root = Path(root)
        self.config = config or Config.load()
        self.sched = sched
        self.name = name or self.config.identity
        self.slots = slots or os.cpu_count() or 1
        self.identity = identity
        self.free = asyncio.Semaphore(self.slots)
        self.running: dict[str, Attempt] = {}
        self.exclusive = asyncio.Lock()
        self.shared = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.pending_dir = self.root / "pending"
        self.handed = asyncio.Event()
        self.loop = Reconnect(self._dial, self._serve, backoff=backoff or owen_backoff(),
                              what="scheduler")
        self.connections = 0
        self.types: dict[str, bool] = {}
        self.kept = 0
        self.runners: list[Runner] = []   # idle ones, for the next task
        self.runner_ids = itertools.count()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GERYON_")}

    async def _dial(self) -> Client:
        from geryon.owen.server import sched_address
        address = await sched_address(self.config, self.sched)
        return await Client.connect(address, self.identity,
                                    keepalive=float(self.config.keepalive))

    async def run(self) -> None:
        """Work for ever (cancel to stop: running tasks are killed)."""
        for sub in ("work", "log", "pending"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        try:
            await self.loop.run()
        finally:
            for attempt in list(self.running.values()):
                await self._kill(attempt)
            for runner in self.runners:
                await runner.close()

    async def _serve(self, client: Client) -> None:
        self.connections += 1
        self.types = installed_types(self.root)  # looked at again on each connection
        await client.write("/nodename", self.name)
        await client.write("/attrs", "".join(quote.join([k, v]) + "\n" for k, v in
                                             host_attrs(self.root, self.slots).items()))
        await self._hand_in_pending(client)
        self.loop.backoff.reset()
        log.info("worker %s: connected to %s with %d slots", self.name, client.address,
                 self.slots)
        jobs = [asyncio.ensure_future(self._stoptask(client))]
        jobs += [asyncio.ensure_future(self._fetch(client)) for _ in range(self.slots)]
        jobs.append(asyncio.ensure_future(self._pending_loop(client)))
        closed = asyncio.ensure_future(client.wait_closed())
        try:
            done, _ = await asyncio.wait([closed, *jobs], return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                if job is not closed and job.exception() is not None:
                    raise job.exception()
        finally:
            for job in [closed, *jobs]:
                job.cancel()

    # -- getting work --

    async def _fetch(self, client: Client) -> None:
        """One slot: take a task, run it, hand its result in, again, on one open `task`.
        A result that fits one write goes out with the read of the next offer behind it
        (the session answers them in order), so a task costs one round trip.  The run
        outlives the connection: if the connection goes meanwhile, its result is kept."""
        sftp = await client.session()
        f = handing = taking = None
        try:
            while True:
                await self.free.acquire()
                try:
                    if f is None:
                        f = await self._open_task(client, sftp)
                    taking = asyncio.ensure_future(self._take(f))
                    if handing is not None:
                        kept, handing = await handing, None
                        if not kept:   # refused, and f closed: its offer read with it
                            await asyncio.gather(taking, return_exceptions=True)
                            f = await self._open_task(client, sftp)
                            taking = asyncio.ensure_future(self._take(f))
                    attempt, said = await taking
                except BaseException:
                    self.free.release()
                    raise
                run = asyncio.ensure_future(self._run(attempt))
                try:
                    record = await asyncio.shield(run)
                except asyncio.CancelledError:
                    run.add_done_callback(lambda t, a=attempt: self._keep(a, t.result())
                                          if not t.cancelled() else None)
                    raise
                alone = not said.done() or len(record) > WRITE
                handing = asyncio.ensure_future(self._hand_in(client, attempt, f, said,
                                                              record))
                if alone:   # the next read may not go out before this result is written
                    kept, handing = await handing, None
                    if not kept:
                        f = None
        finally:
            for job in (handing, taking):
                if job is not None and not job.done():
                    job.cancel()
            sftp.exit()

    async def _open_task(self, client, sftp) -> RemoteFile:
        try:
            raw = await sftp.open("/task", "r+b", block_size=0)
        except Exception as err:
            from geryon.ns.client import explain
            raise explain(err, f"{client.address}: open /task") from None
        return RemoteFile(raw, "/task", client.address)

    async def _take(self, f: RemoteFile) -> tuple[Attempt, asyncio.Future]:
        """The next offer on f; the attempt, and the write of our own id for it when the
        scheduler gave none (not waited for: it is answered while the task runs)."""
        reader = wire.OfferReader(DESCRIPTION_BYTES)
        offer = None
        while offer is None:
            data = await f.read()
            if not data:
                raise GeryonError("task: the scheduler ended the file before giving work")
            offer = reader.feed(data)
        taskid, deadline, worker_id, desc = offer
        if worker_id:
            said = asyncio.get_running_loop().create_future()
            said.set_result(None)
        else:
            worker_id = f"{self.name}.{os.getpid()}.{next(_ids)}"
            said = asyncio.ensure_future(f.write(worker_id))
        return Attempt(taskid, worker_id, deadline, desc), said

    # -- running --

    async def _run(self, attempt: Attempt) -> bytes:
        """Run the attempt; its result record.  Frees its slot when the task ends."""
        self.running[attempt.worker_id] = attempt
        try:
            exclusive = self.types.get(attempt.desc.jobtype, False)
            ok, data = await self._execute(attempt, exclusive)
        except Exception as err:  # one bad task never kills the worker
            log.exception("task %s failed to run", attempt.taskid)
            ok, data = False, f"the worker could not run the task: {err}".encode()
        finally:
            self.running.pop(attempt.worker_id, None)
            self.free.release()
        return wire.format_result(ok, data)

    async def _hand_in(self, client, attempt: Attempt, f: RemoteFile, said, record: bytes
                       ) -> bool:
        """Write the result on f (its last write is answered once the scheduler kept it);
        whether f may carry the next task.  A result not handed in is kept for
        reconnect."""
        try:
            await said
            for i in range(0, max(1, len(record)), WRITE):
                await f.write(record[i:i + WRITE])
            return True
        except asyncio.CancelledError:   # the connection went: whether it was kept or
            self._keep(attempt, record)  # not, reconnect tells (and counts it once)
            raise
        except CONNECTION_ERRORS as err:
            log.warning("task %s: could not hand the result in (%s); keeping it for "
                        "reconnect", attempt.taskid, err)
            self._keep(attempt, record)
            if client.conn.is_closed():
                raise
            await f.close()   # the scheduler refused: start again on a new open
            return False

    async def _execute(self, attempt: Attempt, exclusive: bool) -> tuple[bool, bytes]:
        desc = attempt.desc
        script = self.root / f"{desc.jobtype}.job"
        if not script.is_file():
            return False, f"this worker has no {desc.jobtype}.job".encode()
        runner = attempt.runner = self._runner()
        work = attempt.work = runner.work   # emptied after each task: fresh for the next
        try:
            work.mkdir(parents=True)
            runner.forget_input()   # new (or made again): its input file is not ours yet
        except FileExistsError:
            pass
        try:
            for name, data in desc.files:
                place(work, name, data)
            runner.put_input(desc.input)
            env = dict(desc.env)
            env.update(work=str(work), GERYON_RESULT=str(work / ".geryon-result"),
                       GERYON_TASKID=attempt.taskid, GERYON_ROOT=str(self.root))
            line = command_line(work, script, desc.args, env)
        except BaseException:
            self._tidy(attempt, keep=False)
            raise
        stderr_path = work / ".geryon-stderr"
        if exclusive:
            await self.exclusive.acquire()
            while self.shared:
                self.idle.clear()
                await self.idle.wait()
        else:
            async with self.exclusive:
                self.shared += 1
        overdue = []   # a timer, not wait_for: no task of its own for every task
        timer = asyncio.get_running_loop().call_later(
            attempt.deadline, lambda: overdue.append(asyncio.ensure_future(
                self._kill(attempt))))
        try:
            status = await runner.run(line)
            timer.cancel()
            if overdue:
                await overdue[0]
                return self._failed(attempt, b"the task passed its deadline and was "
                                    b"killed\n" + tail(stderr_path))
        finally:
            timer.cancel()
            if exclusive:
                self.exclusive.release()
            else:
                self.shared -= 1
                if not self.shared:
                    self.idle.set()
        kept = self._keep_stderr(attempt, stderr_path)
        if attempt.stopped:
            return self._failed(attempt, b"stopped by the scheduler\n", failure=False)
        if status != 0:
            said = (f"runtask exited with status {status}" if status is not None
                    else "the task was killed")
            return self._failed(attempt, (f"{said} (stderr kept in "
                                          f"{kept or 'no file: it was empty'})\n"
                                          .encode() + tail(stderr_path)))
        try:
            if desc.output == "bundle":
                data = bundle(work)
            else:
                result = work / ".geryon-result"
                if not result.exists():
                    result = work / "result"
                data = result.read_bytes() if result.is_file() else b""
        finally:
            self._tidy(attempt, keep=desc.keep == "all")
        return True, data

    def _runner(self) -> Runner:
        while self.runners:
            runner = self.runners.pop()
            if runner.alive:
                return runner
        return Runner(self.env, self.root,
                      self.root / "work" / f"{os.getpid()}.{next(self.runner_ids)}")

    def _failed(self, attempt: Attempt, why: bytes, failure: bool = True
                ) -> tuple[bool, bytes]:
        """A failed attempt's result; its working directory kept if the job says so."""
        keep = attempt.desc.keep
        kept = self._tidy(attempt, keep=keep == "all" or (keep == "failed" and failure))
        if kept:
            why = f"(its working directory is kept in {kept})\n".encode() + why
        return False, why

    def _tidy(self, attempt: Attempt, keep: bool) -> Path | None:
        """After an attempt: keep its working directory (moved to work/<worker id>) or
        empty it for its runner's next task; its runner goes back to the pool.  Where it
        was kept."""
        work, runner = attempt.work, attempt.runner
        kept = None
        try:
            if keep:
                kept = work.parent / attempt.worker_id
                runner.forget_input()
                os.replace(work, kept)
            elif runner.alive:
                stderr = work / ".geryon-stderr"
                if stderr.exists() and stderr.stat().st_size:
                    stderr.unlink()   # cheaper than the next task's truncating it
                empty(work, OURS)
            else:
                runner.forget_input()
                remove(work)
        except OSError as err:
            log.warning("tidying %s after %s: %s", work, attempt.taskid, err)
        if runner.alive:
            self.runners.append(runner)
        return kept

    def _keep_stderr(self, attempt: Attempt, path: Path) -> Path | None:
        """Keep a non-empty stderr in <root>/log (the newest STDERR_KEPT of them)."""
        logs = self.root / "log"
        kept = logs / f"{attempt.taskid}.{attempt.worker_id}.stderr".replace("/", "_")
        try:
            if not path.stat().st_size:
                return None
            shutil.copyfile(path, kept)
            self.kept += 1
            if self.kept % 50 == 0:
                old = sorted(logs.glob("*.stderr"), key=lambda p: p.stat().st_mtime)
                for p in old[:-STDERR_KEPT]:
                    p.unlink(missing_ok=True)
        except OSError as err:
            log.warning("keeping stderr of %s: %s", attempt.taskid, err)
        return kept

    async def _kill(self, attempt: Attempt) -> None:
        runner = attempt.runner
        if runner is None or not runner.alive:
            return
        script = self.root / f"{attempt.desc.jobtype}.job"
        try:
            killer = await asyncio.create_subprocess_exec(
                "sh", "-c", KILL, str(script), cwd=attempt.work,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.wait_for(killer.wait(), 10)
        except (OSError, asyncio.TimeoutError) as err:
            log.warning("killtask for %s: %s", attempt.taskid, err)
        await runner.kill()

    async def _stoptask(self, client: Client) -> None:
        f = await client.open("/stoptask", "r", wait=True)
        try:
            while True:
                data = await f.read()
                if not data:
                    return
                for worker_id in data.decode(errors="replace").split():
                    attempt = self.running.get(worker_id)
                    if attempt is not None:
                        log.info("stopping %s as the scheduler asks", attempt.taskid)
                        attempt.stopped = True
                        await self._kill(attempt)
        finally:
            await f.close()

    # -- results kept across connections --

    def _keep(self, attempt: Attempt, record: bytes) -> None:
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        body = format_record(f"{attempt.taskid} {attempt.worker_id}".encode(), "task") + record
        tmp = self.pending_dir / f".{attempt.worker_id}.tmp"
        tmp.write_bytes(body)
        os.replace(tmp, self.pending_dir / f"{attempt.worker_id}.rec")
        self.handed.set()

    async def _pending_loop(self, client: Client) -> None:
        while True:
            await self.handed.wait()
            self.handed.clear()
            await self._hand_in_pending(client)

    async def _hand_in_pending(self, client: Client) -> None:
        from geryon.ns.client import RemoteError
        for path in sorted(self.pending_dir.glob("*.rec")):
            body = path.read_bytes()
            f = await client.open("/reconnect", "r+")
            try:
                for i in range(0, len(body), 1 << 19):
                    await f.write(body[i:i + (1 << 19)])
                f.offset = 0
                outcome = (await f.read()).decode(errors="replace").strip()
            except RemoteError as err:
                if client.conn.is_closed():
                    raise
                outcome = f"refused: {err}"   # a job deleted meanwhile, say: drop it
            finally:
                await f.close()
            log.info("handed in %s through reconnect: %s", path.name, outcome)
            path.unlink()


def place(work: Path, name: str, data: bytes) -> None:
    """Put a task's file in its working directory (a name ending in / is a tar to unpack)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise GeryonError(f"task file {name!r} is not a name inside the working directory")
    target = work.joinpath(*parts)
    if name.endswith("/"):
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(target, filter="data")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


OURS = frozenset({".geryon-input", ".geryon-stderr"})  # written over by each task


def empty(work: Path, but=frozenset()) -> None:
    """Remove what a working directory holds, but the names in but (written again by the
    next task: keeping them spares the file system a create and an unlink)."""
    with os.scandir(work) as entries:
        for entry in entries:
            if entry.name in but:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def remove(work: Path) -> None:
    """Remove a working directory and everything in it."""
    shutil.rmtree(work, ignore_errors=True)


def bundle(work: Path) -> bytes:
    """An uncompressed tar of the working directory (our own files left out)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(work.rglob("*")):
            rel = path.relative_to(work)
            if rel.parts[0].startswith(".geryon-"):
                continue
            tar.add(path, arcname=str(rel), recursive=False)
    return out.getvalue()


def tail(path: Path, size: int = WHY_BYTES) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - size))
            return f.read()
    except OSError:
        return b""

