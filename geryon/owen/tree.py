"""The scheduler's file tree (docs/sched.md is its manual page): Owen's name space.

  attrs nodename reconnect stoptask task      worker files (role worker); each
                                              connection sees its own node through them
  admin/                                      role submit (monitor may read)
    clone ctl jobs nodes formats group event times/
    <n>/ ctl monitor description duration group id log data result why

The adapter is thin: each file's open, read, write and close become calls on the core
(geryon.owen.core.Scheduler), and the core's `changed` wakes whoever waits.  Waits are
cheap at scale: a `task` read waits on an event of its own, set only when its waiter is
given an attempt, and a `stoptask` read on its node's.
"""

import asyncio
import logging

from geryon import quote
from geryon.errors import LimitExceeded, NotFound, PermissionDenied
from geryon.ns.limits import refuse
from geryon.ns.tree import Dir, File, Handle, MessageHandle, TextFile, TextHandle
from geryon.owen import wire
from geryon.owen.core import COMPLETE, DELETED, NEW, OwenError, Who

log = logging.getLogger("geryon.owen")

WORKER = frozenset({"worker"})
SUBMIT = frozenset({"submit"})
WATCHERS = frozenset({"submit", "monitor"})
ADMIN = frozenset({"admin"})
TEXT_LIMIT = 64 << 10   # bytes of one ctl message, attrs write or description


def who(caller) -> Who:
    return Who(caller.identity, "admin" in caller.roles)


def text_of(data: bytes, what: str, limit: int = TEXT_LIMIT) -> str:
    if len(data) > limit:
        raise refuse(f"{what}: a message", len(data), limit, "sftp_max_write")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OwenError(f"{what}: the message is not UTF-8 text") from None


class Conn:
    """What one worker connection has said: its node and the attempts it carries."""

    def __init__(self):
        self.node = None
        self.attempts = set()
        self.handles = set()   # its open `task` files

    def let_go(self, sched) -> None:
        """The connection is going: its slots waiting for work wait no more, so a task
        its lost attempts put back is not offered on it again."""
        for handle in self.handles:
            if handle.waiter.attempt is None:
                sched.withdraw(handle.waiter)


class Limits:
    """Sizes the tree takes at most (geryon.config: owen_data_bytes, owen_result_bytes)."""

    def __init__(self, data_bytes: int = 1 << 30, result_bytes: int = 64 << 20):
        self.data_bytes, self.result_bytes = data_bytes, result_bytes


class SchedTree(Dir):
    """The root: worker files, and admin/ for controllers and monitors."""

    def __init__(self, sched, formats: dict, limits: Limits | None = None, scripts=None):
        self.sched = sched
        self.limits = limits or Limits()
        self.scripts = scripts           # geryon.owen.jobscript.JobScripts, for (script ...)
        self.flushing: asyncio.Future | None = None
        self.finalising: set = set()
        self.conns: dict = {}
        self.ready: dict[int, asyncio.Event] = {}   # waiter serial -> its event
        self.stop_events: dict = {}                 # node -> event for its stoptask readers
        self.wakeup = asyncio.Event()
        sched.listeners.append(self._wake)
        self.fixed = {
            "nodename": TextFile(self._nodename, self._set_nodename, WORKER, WORKER),
            "attrs": TextFile(self._attrs, self._set_attrs, WORKER, WORKER),
            "task": TaskFile(self),
            "stoptask": StopFile(self),
            "reconnect": ReconnectFile(self),
            "admin": AdminDir(self, formats),
        }

    def _wake(self) -> None:
        for waiter in self.sched.take_offered():
            event = self.ready.pop(waiter.serial, None)
            if event is not None:
                event.set()
        for node in self.sched.stopping:
            event = self.stop_events.pop(node, None)
            if event is not None:
                event.set()
        self.sched.stopping.clear()
        self.wakeup.set()
        self.wakeup = asyncio.Event()

    def entries(self, caller):
        return self.fixed

    # -- results --

    async def hand_in(self, attempt, ok: bool, data: bytes) -> str:
        """A worker's result for attempt: judged (the job's verify script), given to the
        core, and kept for good before this returns; what became of it."""
        why = "" if ok else data[-2000:].decode(errors="replace")
        script = getattr(attempt.job.generator, "script", None)
        if ok and script:
            reason = await self.scripts.verify(script, self._script_env(attempt), data)
            if reason:
                ok, why = False, reason
        outcome = self.sched.result(attempt, ok, data if ok else b"", why=why)
        await self.kept()
        if outcome == "done" and script:
            run = asyncio.ensure_future(self._finalise(attempt, script, data))
            self.finalising.add(run)
            run.add_done_callback(self.finalising.discard)
        return outcome

    def kept(self) -> asyncio.Future:
        """Done once what the core has changed so far is in storage for good.  Every
        result handed in during one turn of the event loop shares one commit."""
        if self.flushing is None:
            self.flushing = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._flush)
        return self.flushing

    def _flush(self) -> None:
        done, self.flushing = self.flushing, None
        try:
            self.sched.storage.flush()
        except Exception as err:  # the workers are told; they hand their results in again
            log.exception("scheduler: could not keep finished tasks")
            done.set_exception(OwenError(f"task: the scheduler could not keep the result "
                                         f"({err}); hand it in again through reconnect"))
        else:
            done.set_result(None)

    def _script_env(self, attempt) -> dict:
        return {"taskid": attempt.taskid, "job": str(attempt.job.id),
                "task": str(attempt.task.n), **dict(attempt.task.spec.env)}

    async def _finalise(self, attempt, script, data: bytes) -> None:
        reason = await self.scripts.finalise(script, self._script_env(attempt), data)
        if reason:
            self.sched.log(attempt.job, f"task {attempt.task.n}: {reason}")

    # -- per connection --

    def conn(self, caller) -> Conn:
        conn = self.conns.get(caller)
        if conn is None:
            conn = self.conns[caller] = Conn()
        return conn

    def node(self, caller, what: str):
        node = self.conn(caller).node
        if node is None:
            raise OwenError(f"{what}: write this worker's name to nodename first")
        return node

    def _nodename(self, caller) -> bytes:
        node = self.conn(caller).node
        return (node.name + "\n").encode() if node else b""

    def _set_nodename(self, caller, data: bytes):
        name = text_of(data, "nodename").strip()
        conn = self.conn(caller)
        if conn.node is not None:
            raise OwenError(f"nodename: this connection is node {conn.node.name} already")
        if not name or len(name) > 64 or any(c.isspace() or ord(c) < 32 or c in "/'"
                                             for c in name):
            raise OwenError(f"nodename: {name[:64]!r} is not a node name (one word of at most "
                            "64 characters, no '/' or quotes)")
        conn.node = self.sched.connect(name, caller.identity, caller.peer)
        asyncio.get_running_loop().create_task(self._watch(caller, conn))
        return None

    async def _watch(self, caller, conn: Conn) -> None:
        await caller.closed.wait()
        self.conns.pop(caller, None)
        conn.let_go(self.sched)
        self.sched.disconnect(conn.node, list(conn.attempts))

    def _attrs(self, caller) -> bytes:
        node = self.conn(caller).node
        if node is None:
            return b""
        return "".join(quote.join([k, v]) + "\n" for k, v in sorted(node.attrs.items())).encode()

    def _set_attrs(self, caller, data: bytes):
        self.sched.set_attrs(self.node(caller, "attrs"), text_of(data, "attrs"))


class TaskFile(File):
    """`task`: each open is a task slot of the worker asking for work."""

    readers = writers = WORKER

    def __init__(self, tree: SchedTree):
        self.tree = tree

    async def open(self, caller, read, write):
        node = self.tree.node(caller, "task")
        return TaskHandle(self.tree, caller, node)


# What a `task` handle takes next: state -> (the operation allowed, the state after it).
# After an offer the attempt runs, named by the scheduler; the worker's first write may
# rename it (one word) or begin the result.  A result written whole moves "started" on
# to "finished" (TaskHandle.write), where a read asks for the next offer.
TASK_FILE = {"waiting": ("read", "offered"), "offered": ("write", "started"),
             "started": ("write", "started"), "finished": ("read", "offered")}


class TaskHandle(MessageHandle):
    """One slot's exchange on `task`, in the order TASK_FILE gives (wire.py): an offer,
    the result, and again the next offer while the file stays open."""

    def __init__(self, tree: SchedTree, caller, node):
        super().__init__(caller, self._next)
        self.tree, self.node = tree, node
        self.state = "waiting"
        self.waiter = tree.sched.request(node)
        self.result = wire.ResultReader(tree.limits.result_bytes, "task")
        tree.conn(caller).handles.add(self)

    def _expect(self, op: str) -> None:
        allowed, after = TASK_FILE[self.state]
        if op != allowed:
            raise OwenError(f"task: a {op} is out of turn in state {self.state}; next comes "
                            f"a {allowed} (see docs/sched.md)")
        self.state = after

    async def read(self, offset, size):
        if not self.pending:   # a new offer: made at once when work is there already
            before = self.state
            self._expect("read")
            if before == "finished":   # the same open asks for the next task
                self.waiter = self.tree.sched.request(self.node)
                self.result = wire.ResultReader(self.tree.limits.result_bytes, "task")
            if self.waiter.attempt is not None:
                self.pending = self._offer()
        return await super().read(offset, size)

    async def _next(self) -> bytes:
        """The offer, once the waiter is given work (the read waits for it)."""
        if self.waiter.attempt is None:
            event = self.tree.ready[self.waiter.serial] = asyncio.Event()
            if self.waiter.attempt is None:
                await event.wait()
        return self._offer()

    def _offer(self) -> bytes:
        sched = self.tree.sched
        attempt = self.waiter.attempt
        self.tree.conn(self.caller).attempts.add(attempt)
        sched.started(attempt, sched.attempt_id(attempt))
        remaining = max(1.0, attempt.deadline - sched.clock())
        generator = attempt.job.generator
        return wire.format_offer(attempt.taskid, remaining, attempt.worker_id,
                                 wire.format_description(
                                     attempt.task.spec, getattr(generator, "output", "data"),
                                     keep_of(generator)))

    async def write(self, offset, data):
        before = self.state
        self._expect("write")
        if before == "offered" and not data.startswith(b"data "):   # the worker's own id
            self.tree.sched.started(self.waiter.attempt, text_of(data, "task", 256).strip())
            return
        got = self.result.feed(data)
        if got is not None:
            self.state = "finished"
            attempt = self.waiter.attempt
            self.tree.conn(self.caller).attempts.discard(attempt)
            await self.tree.hand_in(attempt, *got)

    async def close(self):
        self._finish(lost=False)

    async def abort(self):
        self._finish(lost=True)

    def _finish(self, lost: bool) -> None:
        self.tree.ready.pop(self.waiter.serial, None)
        attempt = self.waiter.attempt
        sched = self.tree.sched
        conn = self.tree.conns.get(self.caller)
        if conn is not None:
            conn.handles.discard(self)
            if lost:   # a session ends unclosed when its connection goes
                conn.let_go(sched)
        if attempt is None or attempt.state == "offered":
            sched.withdraw(self.waiter)
            sched.changed()
        elif self.state != "finished":
            self.tree.conn(self.caller).attempts.discard(attempt)
            if lost and attempt.state in ("running", "stopping"):
                sched.disconnect_attempt(attempt)
            else:
                sched.close(attempt)


def keep_of(generator) -> str:
    """What the worker is to keep of a generator's attempts (filesplit -k, -a)."""
    if getattr(generator, "keep_all", False):
        return "all"
    return "failed" if getattr(generator, "keep_failed", False) else ""

class StopFile(File):
    """`stoptask`: each read names (by the worker's own id) an attempt to kill."""

    readers = WORKER

    def __init__(self, tree: SchedTree):
        self.tree = tree

    async def open(self, caller, read, write):
        node = self.tree.node(caller, "stoptask")

        async def next_stop() -> bytes:
            while not node.stops:
                event = self.tree.stop_events.setdefault(node, asyncio.Event())
                await event.wait()
            return (node.stops.popleft() + "\n").encode()

        return MessageHandle(caller, next_stop)


class ReconnectFile(File):
    """`reconnect`: hand in the result of an attempt whose connection was lost."""

    readers = writers = WORKER

    def __init__(self, tree: SchedTree):
        self.tree = tree

    async def open(self, caller, read, write):
        node = self.tree.node(caller, "reconnect")
        return ReconnectHandle(self.tree, node)


class ReconnectHandle(Handle):
    def __init__(self, tree, node):
        self.tree, self.node = tree, node
        self.reader = wire.ResultReader(tree.limits.result_bytes, "reconnect", with_task=True)
        self.outcome = b""

    async def write(self, offset, data):
        got = self.reader.feed(data)
        if got is not None:
            taskid, worker_id = self.reader.task
            attempt = self.tree.sched.reconnected(self.node, taskid, worker_id)
            outcome = await self.tree.hand_in(attempt, *got)
            self.outcome = f"{outcome}\n".encode()

    async def read(self, offset, size):
        return self.outcome[offset:offset + size]


# --- admin/ ----------------------------------------------------------------------------

class AdminDir(Dir):
    readers = WATCHERS

    def __init__(self, tree: SchedTree, formats: dict):
        self.tree = tree
        sched = tree.sched
        self.fixed = {
            "clone": CloneFile(tree),
            "ctl": TextFile(lambda c: b"", lambda c, d: self._admin_ctl(d), ADMIN, ADMIN),
            "jobs": TextFile(lambda c: sched.jobs_text().encode(), readers=WATCHERS),
            "nodes": TextFile(lambda c: sched.nodes_text().encode(), readers=WATCHERS),
            "formats": TextFile(lambda c: "".join(f"{quote.join([k])} {v}\n" for k, v in
                                                  sorted(formats.items())).encode(),
                                readers=WATCHERS),
            "group": TextFile(lambda c: sched.group_text().encode(), readers=WATCHERS),
            "event": EventFile(tree),
            "times": TimesDir(tree),
        }

    def _admin_ctl(self, data: bytes):
        out = self.tree.sched.admin_ctl(text_of(data, "admin/ctl"))
        return out.encode() if out else None

    def entries(self, caller):
        out = dict(self.fixed)
        for id in self.tree.sched.jobs:
            out[str(id)] = JobDir(self.tree, id)
        return out

    def child(self, name, caller):
        if name in self.fixed:
            return self.fixed[name]
        if name.isdigit() and int(name) in self.tree.sched.jobs:
            return JobDir(self.tree, int(name))
        return None


class CloneFile(File):
    """Opening `clone` makes a job; reading gives its number, writes are its ctl."""

    readers = writers = SUBMIT

    def __init__(self, tree):
        self.tree = tree

    async def open(self, caller, read, write):
        sched = self.tree.sched
        job = sched.clone(who(caller))
        return TextHandle(f"{job.id}\n".encode(),
                          lambda data: ctl_write(sched, job.id, data, caller))


def ctl_write(sched, id: int, data: bytes, caller):
    job = sched.job(id)
    sched.ctl(job, text_of(data, f"admin/{id}/ctl"), who(caller))
    return None


class EventFile(File):
    """`admin/event`: each read waits for changes and gives `seq kind name state` lines."""

    readers = WATCHERS

    def __init__(self, tree):
        self.tree = tree

    async def open(self, caller, read, write):
        sched = self.tree.sched
        seen = sched.seq

        async def next_message():
            nonlocal seen
            while sched.seq <= seen:
                await self.tree.wakeup.wait()
            changes = sched.changes_since(seen)
            if changes is None:
                seen = sched.seq
                return f"{seen} reset all -\n".encode()
            seen = changes[-1][0]
            return "".join(f"{s} {line}\n" for s, line in changes[-4096:]).encode()

        return MessageHandle(caller, next_message)


class TimesDir(Dir):
    """`admin/times/<n>`: per task of job n, `task state failures seconds`."""

    readers = WATCHERS

    def __init__(self, tree):
        self.tree = tree

    def entries(self, caller):
        return {str(id): self._file(id) for id in self.tree.sched.jobs}

    def child(self, name, caller):
        if name.isdigit() and int(name) in self.tree.sched.jobs:
            return self._file(int(name))
        return None

    def _file(self, id):
        sched = self.tree.sched

        def content(caller):
            job = sched.jobs.get(id)
            if job is None:
                return b""
            return "".join(f"{t.n} {t.state} {t.failures} {t.took:.3f}\n"
                           for t in job.tasks).encode()

        return TextFile(content, readers=WATCHERS)


class JobDir(Dir):
    """admin/<n>/: one job's files."""

    readers = WATCHERS

    def __init__(self, tree, id: int):
        self.tree, self.id = tree, id

    def job(self):
        job = self.tree.sched.jobs.get(self.id)
        if job is None:
            raise NotFound(f"admin/{self.id}: the job is gone")
        return job

    def entries(self, caller):
        sched, id = self.tree.sched, self.id
        text = lambda f: TextFile(lambda c: f(self.job()).encode(), readers=WATCHERS)  # noqa: E731
        return {
            "ctl": TextFile(lambda c: f"{id}\n".encode(),
                            lambda c, d: ctl_write(sched, id, d, c), WATCHERS, SUBMIT),
            "monitor": MonitorFile(self.tree, id),
            "description": TextFile(lambda c: (self.job().description + "\n").encode(),
                                    lambda c, d: sched.describe(
                                        self.job(), text_of(d, "description"), who(c)),
                                    WATCHERS, SUBMIT),
            "duration": text(lambda j: f"{(j.finished or sched.clock()) - j.created:.0f}\n"),
            "group": text(lambda j: sched.group_text(j.group)),
            "id": text(lambda j: f"{j.id}\n"),
            "log": text(lambda j: "".join(line + "\n" for line in j.log)),
            "why": text(sched.why),
            "data": DataFile(self.tree, id),
            "result": ResultFile(self.tree, id),
        }


MONITOR_GAP = 0.1   # seconds at least between two monitor lines of a job that is not done


class MonitorFile(File):
    """A job's status now, then again each time it changes (at most one line per
    MONITOR_GAP while it runs, so a busy job does not cost a message per task); end of
    file once it is done."""

    readers = WATCHERS

    def __init__(self, tree, id):
        self.tree, self.id = tree, id

    async def open(self, caller, read, write):
        sched = self.tree.sched
        loop = asyncio.get_running_loop()
        shown, sent = None, 0.0

        async def next_status():
            nonlocal shown, sent
            while True:
                job = sched.jobs.get(self.id)
                if job is None or (shown is not None and shown[1] in (COMPLETE, DELETED)):
                    return b""
                if shown is None or job.version != shown[0] or job.state != shown[1]:
                    early = sent + MONITOR_GAP - loop.time()
                    if shown is not None and early > 0 and job.state not in (COMPLETE,
                                                                               DELETED):
                        await asyncio.sleep(early)
                        continue
                    shown, sent = (job.version, job.state), loop.time()
                    return job.monitor().encode()
                await self.tree.wakeup.wait()

        return MessageHandle(caller, next_status)


class DataFile(File):
    """A job's input, written by its owner before `load`: records (`data <n> <path>`, as
    file2rec makes them), unpacked into the job's files when the writer closes it."""

    readers = WATCHERS
    writers = SUBMIT

    def __init__(self, tree, id):
        self.tree, self.id = tree, id

    def path(self):
        return self.tree.sched.storage.data_dir(self.id) / "data"

    def size(self, caller):
        p = self.path()
        return p.stat().st_size if p.exists() else 0

    async def open(self, caller, read, write):
        job = self.tree.sched.job(self.id)
        if write:
            if caller.identity != job.owner and "admin" not in caller.roles:
                raise PermissionDenied(f"admin/{self.id}/data: permission denied; the job "
                                       f"belongs to {job.owner}")
            if job.state != NEW:
                raise OwenError(f"admin/{self.id}/data: the job is loaded already; its input "
                                "cannot change (clone a new job)")
        return DataHandle(self.path(), write, self.tree.limits.data_bytes, self.id)


def unpack(path, id: int) -> None:
    """Turn the records of a job's data file into files in its files directory."""
    from geryon.owen.records import RecordError, rec2file
    try:
        with open(path, "rb") as f:
            rec2file(f, path.parent / "files")
    except RecordError as err:
        raise OwenError(f"admin/{id}/data: {err}; write file2rec records (`data <n> "
                        "<path>` and the bytes) to it") from None


class DataHandle(Handle):
    def __init__(self, path, write, limit, id):
        if write:
            path.touch()
        elif not path.exists():
            path.write_bytes(b"")
        self.f = open(path, "r+b" if write else "rb")
        self.limit, self.id, self.path, self.writing = limit, id, path, write

    async def read(self, offset, size):
        self.f.seek(offset)
        return self.f.read(size)

    async def write(self, offset, data):
        if offset + len(data) > self.limit:
            raise LimitExceeded(str(refuse(f"admin/{self.id}/data", offset + len(data),
                                           self.limit, "owen_data_bytes")))
        self.f.seek(offset)
        self.f.write(data)

    async def truncate(self, size):
        self.f.truncate(size)

    def size(self):
        self.f.seek(0, 2)
        return self.f.tell()

    async def close(self):
        self.f.close()
        if self.writing:
            unpack(self.path, self.id)

    async def abort(self):
        self.f.close()  # a writer that went away half way: its records are not unpacked


class ResultFile(File):
    """A job's result: the records (or bare outputs) of its tasks in completion order."""

    readers = WATCHERS

    def __init__(self, tree, id):
        self.tree, self.id = tree, id

    def size(self, caller):
        return self.tree.sched.storage.result_size(self.id)

    async def open(self, caller, read, write):
        self.tree.sched.job(self.id)
        return ResultHandle(self.tree.sched.storage, self.id)


class ResultHandle(Handle):
    def __init__(self, storage, id):
        self.storage, self.id = storage, id

    async def read(self, offset, size):
        self.storage.flush()   # never show a result that is not kept for good
        return self.storage.result(self.id, offset, size)

    def size(self):
        return self.storage.result_size(self.id)
