"""Owen's scheduling rules, with no I/O: the labour exchange as a data structure.

Theory of operation.  Workers pull.  Each free task slot of a worker is a Waiter, queued in
arrival order.  dispatch() walks the waiters in that order and gives each the first task
it may run, trying the running jobs in queue order (priority first, then age); within a
job, failed tasks come before new ones, and a node is never given the task it did last.
When a job has no task left that nobody is running, an idle node is given one that is
running elsewhere (a speculative copy, at most Rules.copies at once): the first good
result wins and later ones are counted as duplicates, so no task's output is appended to
the result twice.

A task that fails Generator.failure_limit times fails for good.  A node with more than
Rules.blacklist_after failures in a row (a success resets the count; an attempt the
scheduler stopped does not count) is blacklisted for Rules.parole seconds.

The lives of an attempt, a task and a job are the tables ATTEMPT, TASK and JOB:
(state, event) -> next state.  An event a table does not list is a broken rule, and the
error says who broke it and in which state.  Every change worth keeping is written to the
Storage before the call returns (geryon.owen.store); the clock is injected, so tests step
the scheduler instead of sleeping.  The adapter (geryon.owen.tree) turns file operations
into these calls and wakes whoever waits when `changed` is called.
"""

import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from geryon import quote
from geryon.errors import GeryonError, PermissionDenied
from geryon.owen.store import JobRecord, Storage


class OwenError(GeryonError):
    """A request the scheduler refuses: a bad ctl message, a rule broken."""


# --- the tables ------------------------------------------------------------------------

OFFERED, RUNNING, STOPPING, DONE, FAILED, STOPPED, RETURNED, DISCONNECTED = (
    "offered", "running", "stopping", "done", "failed", "stopped", "returned", "disconnected")

# An attempt: offered to a waiter, started when the worker writes its id.
ATTEMPT = {
    (OFFERED, "start"): RUNNING,
    (OFFERED, "close"): RETURNED,      # the worker let go before starting: no harm done
    (OFFERED, "lost"): RETURNED,
    (OFFERED, "stop"): RETURNED,
    (RUNNING, "good"): DONE,
    (RUNNING, "bad"): FAILED,
    (RUNNING, "close"): FAILED,        # closed without a result
    (RUNNING, "overdue"): FAILED,      # past its deadline and grace
    (RUNNING, "lost"): DISCONNECTED,   # its connection went: the result may come by reconnect
    (RUNNING, "stop"): STOPPING,       # the scheduler asked the worker to stop it
    (STOPPING, "good"): DONE,
    (STOPPING, "bad"): STOPPED,
    (STOPPING, "close"): STOPPED,
    (STOPPING, "lost"): STOPPED,
    (STOPPING, "overdue"): STOPPED,
    (STOPPING, "stop"): STOPPING,
    (DISCONNECTED, "good"): DONE,      # handed in through reconnect
    (DISCONNECTED, "bad"): FAILED,
    (DISCONNECTED, "overdue"): DISCONNECTED,
    (DISCONNECTED, "stop"): DISCONNECTED,
}
ACTIVE = frozenset({OFFERED, RUNNING, STOPPING})

PENDING = "pending"
# A task: pending (queued, new or to retry), running (some attempt active), done, failed.
TASK = {
    (PENDING, "assign"): RUNNING,
    (RUNNING, "assign"): RUNNING,      # a speculative copy
    (RUNNING, "good"): DONE,
    (RUNNING, "retry"): PENDING,       # its last active attempt ended without a result
    (RUNNING, "give up"): FAILED,      # the failure limit was reached
    (PENDING, "good"): DONE,           # a disconnected attempt handed its result in
    (PENDING, "give up"): FAILED,
    (DONE, "good"): DONE,              # a duplicate
}
FINISHED = frozenset({DONE, FAILED})

NEW, STOPPED_JOB, RUNNING_JOB = "new", "stopped", "running"
COMPLETE, DELETED = "complete", "deleted"
# A job: new (cloned), stopped (loaded, or stopped), running, complete, deleted.
JOB = {
    (NEW, "load"): STOPPED_JOB,
    (STOPPED_JOB, "start"): RUNNING_JOB,
    (RUNNING_JOB, "start"): RUNNING_JOB,
    (RUNNING_JOB, "stop"): STOPPED_JOB,
    (STOPPED_JOB, "stop"): STOPPED_JOB,
    (RUNNING_JOB, "teardown"): STOPPED_JOB,
    (STOPPED_JOB, "teardown"): STOPPED_JOB,
    (COMPLETE, "teardown"): COMPLETE,
    (RUNNING_JOB, "finish"): COMPLETE,
    (STOPPED_JOB, "finish"): COMPLETE,  # its running attempts finished it
    (NEW, "delete"): DELETED, (STOPPED_JOB, "delete"): DELETED,
    (RUNNING_JOB, "delete"): DELETED, (COMPLETE, "delete"): DELETED,
}
JOB_WHY = {  # why an event is refused in a state, for the error message
    "load": "it is loaded already; clone a new job for other work",
    "start": "load a task generator first (`load filesplit ...`)",
    "stop": "load a task generator first",
    "teardown": "it was never started",
}


def step(table: dict, state, event, what: str):
    """The next state, or OwenError naming the thing, its state and the event refused."""
    try:
        return table[state, event]
    except KeyError:
        raise OwenError(f"{what}: cannot {event} in state {state}") from None


@dataclass(frozen=True)
class Rules:
    """The tunable rules (defaults: geryon.config's owen_* settings)."""

    blacklist_after: int = 5    # failures in a row beyond which a node is blacklisted
    parole: float = 600.0       # seconds a node stays blacklisted
    copies: int = 2             # attempts of one task at once (speculative re-runs)
    deadline: float = 3600.0    # seconds an attempt may take, unless the job says
    grace: float = 30.0         # seconds past a deadline before the scheduler gives up
    history: int = 4096         # changes remembered for admin/event readers
    log_lines: int = 1000       # lines of each job's log kept

    KEYS = {"blacklist_after": "owen_blacklist_after", "parole": "owen_parole",
            "copies": "owen_copies", "deadline": "owen_deadline", "grace": "owen_grace"}

    @classmethod
    def from_config(cls, config) -> "Rules":
        return cls(**{f: type(getattr(cls, f))(getattr(config, key))
                      for f, key in cls.KEYS.items()})


@dataclass(frozen=True)
class Who:
    """Who asks: an identity, and whether it is an admin."""

    identity: str
    admin: bool = False


# --- the things ------------------------------------------------------------------------

@dataclass(eq=False)
class Attempt:
    serial: int
    job: "Job"
    task: "Task"
    node: "Node"
    state: str = OFFERED
    worker_id: str = ""
    started: float = 0.0
    deadline: float = 0.0
    why: str = ""

    @property
    def taskid(self) -> str:
        return self.task.taskid(self.job)


@dataclass(eq=False)
class Task:
    n: int
    spec: object          # geryon.owen.generators.TaskSpec
    state: str = PENDING
    failures: int = 0
    active: list = field(default_factory=list)   # Attempts offered or running
    last_node: str = ""
    why: str = ""         # why its last attempt failed, for `why`
    took: float = 0.0     # seconds the winning attempt took

    @property
    def jobtype(self) -> str:
        return self.spec.jobtype

    def taskid(self, job) -> str:
        return f"{job.uniq}.{job.id}#{self.n}"


COUNTERS = ("datain", "dataout", "disconnected", "duplicate", "failures", "totaltime")


@dataclass(eq=False)
class Job:
    id: int
    owner: str
    uniq: str
    created: float
    state: str = NEW
    priority: int = 0
    group: frozenset | None = None   # None: any node
    description: str = ""
    argv: tuple = ()
    deadline: float = 0.0            # 0: the rules' default
    finished: float = 0.0
    generator: object = None
    tasks: list = field(default_factory=list)
    fresh: dict = field(default_factory=dict)    # jobtype -> deque of new task numbers
    retry: deque = field(default_factory=deque)  # failed task numbers, retried first
    running: set = field(default_factory=set)    # numbers of the tasks in state running
    counts: dict = field(default_factory=lambda: {c: 0 for c in COUNTERS})
    log: deque = field(default_factory=deque)
    version: int = 0                 # bumped on every change a monitor shows
    last_failure: str = ""
    states: dict = field(default_factory=lambda: {PENDING: 0, RUNNING: 0, DONE: 0, FAILED: 0})

    def record(self) -> JobRecord:
        return JobRecord(self.id, self.owner, self.uniq, self.state, self.priority,
                         None if self.group is None else tuple(sorted(self.group)),
                         self.description, tuple(self.argv), self.deadline, self.created,
                         self.finished, dict(self.counts))

    def tally(self) -> dict:
        """How many tasks are in each state (kept as tasks move, so reading it is cheap)."""
        return dict(self.states)

    def recount(self) -> None:
        """Count the tasks in each state again (after they were set wholesale)."""
        self.states = {PENDING: 0, RUNNING: 0, DONE: 0, FAILED: 0}
        for task in self.tasks:
            self.states[task.state] += 1

    def move(self, task: "Task", event: str) -> None:
        """Move task on by the TASK table, keeping the tally."""
        state = step(TASK, task.state, event, f"task {task.taskid(self)}")
        self.states[task.state] -= 1
        self.states[state] += 1
        task.state = state

    def finished_all(self) -> bool:
        return bool(self.tasks) and self.states[DONE] + self.states[FAILED] == len(self.tasks)

    def monitor(self) -> str:
        """Owen's monitor fields, as `name value` pairs on one line."""
        tally = self.tally()
        fields = [("state", self.state), ("total", len(self.tasks)),
                  ("complete", tally[DONE]), ("running", tally[RUNNING]),
                  ("failed", tally[FAILED]), ("datain", self.counts["datain"]),
                  ("dataout", self.counts["dataout"]),
                  ("disconnected", self.counts["disconnected"]),
                  ("duplicate", self.counts["duplicate"]),
                  ("totaltime", f"{self.counts['totaltime']:.3f}"),
                  ("failures", self.counts["failures"])]
        return " ".join(f"{k} {v}" for k, v in fields) + "\n"


@dataclass(eq=False)
class Node:
    name: str
    identity: str
    address: str = ""
    attrs: dict = field(default_factory=dict)
    connections: int = 0
    state: str = "disconnected"
    since: float = 0.0
    completed: int = 0
    failed: int = 0
    in_row: int = 0                  # failures in a row
    blacklisted_until: float = 0.0
    attempts: dict = field(default_factory=dict)   # worker id (or serial) -> Attempt
    waiting: int = 0
    last: tuple = ()                 # (job id, task n) it was given last
    stops: deque = field(default_factory=deque)    # worker ids to name on stoptask
    _types: frozenset | None = None  # the job types attrs names, made when asked

    @property
    def jobtypes(self) -> set:
        if self._types is None:   # made again after set_attrs
            self._types = frozenset(v for k, v in self.attrs.items() if k.startswith("jobtype"))
        return self._types

    def line(self) -> str:
        tasks = " ".join(a.taskid for a in self.attempts.values() if a.state in ACTIVE)
        pairs = [("state", self.state), ("since", f"{self.since:.0f}"),
                 ("address", self.address), ("connected", self.connections),
                 ("completed", self.completed), ("failed", self.failed),
                 ("blacklisted", f"{self.blacklisted_until:.0f}"
                  if self.state == "blacklisted" else "0"),
                 ("tasks", tasks), *sorted(self.attrs.items())]
        return quote.join([self.name, *(str(w) for p in pairs for w in p)]) + "\n"


@dataclass(eq=False)
class Waiter:
    """One free task slot of a node, waiting for an attempt."""

    serial: int
    node: Node
    attempt: Attempt | None = None
    gone: bool = False


# --- the scheduler ---------------------------------------------------------------------

PRIORITY_WORDS = ("high", "low")


class Scheduler:
    """Jobs, nodes, waiters and attempts, and the rules that match them."""

    def __init__(self, storage: Storage, load, rules: Rules | None = None, *,
                 clock=time.time, uniq=lambda: secrets.token_hex(4)):
        self.storage = storage
        self.load_generator = load      # (argv, data_dir) -> TaskGenerator
        self.rules = rules or Rules()
        self.clock = clock
        self.uniq = uniq
        self.boot = uniq()                    # names this run's attempts (attempt_id)
        self.jobs: dict[int, Job] = {}
        self.nodes: dict[str, Node] = {}
        self.waiters: deque[Waiter] = deque()
        self.group: frozenset | None = None   # the global node group
        self.serial = 0
        self.seq = 0
        self.events: deque = deque(maxlen=self.rules.history)
        self.listeners = []                   # callables() told after each change
        self.offered: list[Waiter] = []       # waiters given an attempt, for the adapter
        self.stopping: set = set()            # nodes with worker ids to stop, for the adapter
        self._restore()

    # -- events and persistence --

    def note(self, kind: str, name, state: str) -> None:
        self.seq += 1
        self.events.append((self.seq, f"{kind} {name} {state}"))

    def changes_since(self, seen: int) -> list | None:
        """Event lines after seen, or None when some were forgotten (start again)."""
        if seen >= self.seq:
            return []
        if not self.events or self.events[0][0] > seen + 1:
            return None
        return [(s, line) for s, line in self.events if s > seen]

    def changed(self) -> None:
        for listener in self.listeners:
            listener()

    def log(self, job: Job, text: str) -> None:
        job.log.append(f"{self.clock():.3f} {text}")
        while len(job.log) > self.rules.log_lines:
            job.log.popleft()

    def save(self, job: Job) -> None:
        self.storage.save_job(job.record())

    def _restore(self) -> None:
        for rec in self.storage.jobs():
            job = Job(rec.id, rec.owner, rec.uniq, rec.created, rec.state, rec.priority,
                      None if rec.group is None else frozenset(rec.group), rec.description,
                      tuple(rec.argv), rec.deadline, rec.finished)
            job.counts.update(rec.counts)
            self.jobs[job.id] = job
            if job.state in (NEW, DELETED):
                continue
            try:
                self._generate(job)
            except GeryonError as err:
                job.state = STOPPED_JOB
                self.log(job, f"could not load again after a restart: {err}")
                continue
            for n, (state, failures) in self.storage.tasks(job.id).items():
                if 0 <= n < len(job.tasks):
                    task = job.tasks[n]
                    task.state = state if state in FINISHED else PENDING
                    task.failures = failures
            job.recount()
            self._queue_tasks(job)
            self.log(job, "restored after a restart")

    def _generate(self, job: Job) -> None:
        files = self.storage.data_dir(job.id) / "files"  # the data file unpacked
        files.mkdir(exist_ok=True)
        gen = self.load_generator(list(job.argv), files)
        specs = gen.tasks()
        job.generator = gen
        job.tasks = [Task(spec.n if hasattr(spec, "n") else i, spec)
                     for i, spec in enumerate(specs)]
        for i, task in enumerate(job.tasks):
            task.n = i
        job.recount()
        if not job.description:
            job.description = getattr(gen, "description", "") or ""

    def _queue_tasks(self, job: Job) -> None:
        job.fresh, job.retry = {}, deque()
        for task in job.tasks:
            if task.state == PENDING:
                target = job.retry if task.failures else job.fresh.setdefault(task.jobtype,
                                                                              deque())
                target.append(task.n)

    # -- jobs --

    def job(self, id: int | str, who: Who | None = None) -> Job:
        try:
            job = self.jobs[int(id)]
        except (KeyError, ValueError):
            raise OwenError(f"job {id}: no such job (`geryon owen jobs` lists them)") from None
        if job.state == DELETED:
            raise OwenError(f"job {id}: it was deleted")
        if who is not None and not who.admin and who.identity != job.owner:
            raise PermissionDenied(f"job {id}: permission denied; it belongs to {job.owner} "
                                   "(only its owner or an admin may control it)")
        return job

    def clone(self, who: Who) -> Job:
        """A new job, owned by who, waiting for `load`."""
        id = self.storage.new_job_id()
        job = Job(id, who.identity, self.uniq(), self.clock())
        self.jobs[id] = job
        self.save(job)
        self.note("job", id, NEW)
        self.changed()
        return job

    def ctl(self, job: Job, text: str, who: Who) -> None:
        """Apply ctl messages, one a line; a failed `load` removes the job."""
        if who.identity != job.owner and not who.admin:
            raise PermissionDenied(f"job {job.id}: permission denied; it belongs to "
                                   f"{job.owner}")
        for line in text.splitlines() or [""]:
            words = quote.split(line)
            if not words:
                raise OwenError(f"job {job.id}: empty ctl message; use one of {CTL_USAGE}")
            verb, args = words[0], words[1:]
            handler = JOB_CTL.get(verb)
            if handler is None:
                raise OwenError(f"job {job.id}: unknown ctl message {verb[:40]!r}; use one "
                                f"of {CTL_USAGE}")
            handler(self, job, args)
        self.changed()

    def describe(self, job: Job, text: str, who: Who) -> None:
        """Set the job's description (its owner or an admin)."""
        if who.identity != job.owner and not who.admin:
            raise PermissionDenied(f"job {job.id}: permission denied; it belongs to "
                                   f"{job.owner}")
        if len(text) > 4096:
            raise OwenError(f"job {job.id}: a description is at most 4096 characters")
        job.description = " ".join(text.split())
        job.version += 1
        self.save(job)
        self.changed()

    def _move(self, job: Job, event: str) -> None:
        try:
            state = JOB[job.state, event]
        except KeyError:
            why = {COMPLETE: "it is complete", DELETED: "it was deleted"}.get(
                job.state, JOB_WHY.get(event, ""))
            raise OwenError(f"job {job.id}: cannot {event} in state {job.state}"
                            + (f": {why}" if why else "")) from None
        if state != job.state:
            job.state = state
            job.version += 1
            self.note("job", job.id, state)
            self.log(job, state)

    def load(self, job: Job, argv: list) -> None:
        if job.state != NEW:
            self._move(job, "load")
        if not argv:
            self._remove(job)
            raise OwenError(f"job {job.id}: load needs a task generator and its arguments, "
                            "e.g. `load filesplit -l FILE test md5sum`; the job was removed")
        job.argv = tuple(argv)
        try:
            self._generate(job)
            if not job.tasks:
                raise OwenError("the generator made no tasks (is the input empty?)")
        except GeryonError as err:
            self._remove(job)
            raise OwenError(f"job {job.id}: load {quote.join(argv)[:200]}: {err}; the job "
                            "was removed") from None
        self._queue_tasks(job)
        self._move(job, "load")
        self.log(job, f"loaded {quote.join(argv)}: {len(job.tasks)} tasks")
        self.save(job)

    def _remove(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        self.storage.delete_job(job.id)
        self.note("job", job.id, DELETED)

    def start(self, job: Job) -> None:
        self._move(job, "start")
        self.save(job)
        self.dispatch()

    def stop(self, job: Job) -> None:
        self._move(job, "stop")
        self.save(job)

    def teardown(self, job: Job) -> None:
        self._move(job, "teardown")
        for task in job.tasks:
            for attempt in list(task.active):
                self._stop(attempt)
        self.save(job)

    def delete(self, job: Job) -> None:
        for task in job.tasks:
            for attempt in list(task.active):
                self._stop(attempt)
        self._move(job, "delete")
        self.storage.delete_job(job.id)
        self.jobs.pop(job.id, None)

    def set_priority(self, job: Job, word: str) -> None:
        others = [j.priority for j in self.jobs.values() if j is not job] or [job.priority]
        if word == "high":
            job.priority = max(others) + 1
        elif word == "low":
            job.priority = min(others) - 1
        else:
            try:
                job.priority = int(word)
            except ValueError:
                raise OwenError(f"job {job.id}: priority {word[:20]!r}: use high, low or a "
                                "whole number (larger runs first)") from None
        job.version += 1
        self.save(job)
        self.dispatch()

    def set_group(self, current: frozenset | None, args: list, what: str):
        """A group after `group all|none|set|add|del nodes...`."""
        if not args or args[0] not in GROUP_VERBS:
            raise OwenError(f"{what}: group needs one of {', '.join(GROUP_VERBS)}, then "
                            "node names for set, add and del")
        verb, names = args[0], frozenset(args[1:])
        if verb in ("all", "none") and names:
            raise OwenError(f"{what}: group {verb} takes no node names")
        if verb in ("set", "add", "del") and not names:
            raise OwenError(f"{what}: group {verb} needs node names")
        if verb == "all":
            return None
        if verb == "none":
            return frozenset()
        if verb == "set":
            return names
        base = set(self.nodes) if current is None else set(current)
        return frozenset(base | names if verb == "add" else base - names)

    def kick(self, job: Job) -> None:
        """Look at the job again now: attempts lost or overdue go back in the queue."""
        now = self.clock()
        for task in job.tasks:
            for attempt in list(task.active):
                if attempt.state == RUNNING and attempt.deadline and now > attempt.deadline:
                    self._end(attempt, "overdue", why="past its deadline (kicked)")
        self.log(job, "kicked")
        self.dispatch()

    def queue(self) -> list[Job]:
        """The running jobs in the order they are tried."""
        return sorted((j for j in self.jobs.values() if j.state == RUNNING_JOB),
                      key=lambda j: (-j.priority, j.id))

    # -- global control --

    def admin_ctl(self, text: str) -> str:
        out = []
        for line in text.splitlines() or [""]:
            words = quote.split(line)
            if not words:
                raise OwenError(f"admin/ctl: empty message; use one of {ADMIN_USAGE}")
            verb, args = words[0], words[1:]
            if verb == "dump":
                out.append(self.dump())
            elif verb == "group":
                self.group = self.set_group(self.group, args, "admin/ctl")
                self.note("group", "all", self.group_text().strip() or "none")
            elif verb == "teardown":
                for job in list(self.jobs.values()):
                    if job.state in (RUNNING_JOB, STOPPED_JOB):
                        self.teardown(job)
            elif verb in ("delnode", "unblacklist"):
                if not args:
                    raise OwenError(f"admin/ctl: {verb} needs node names")
                missing = [n for n in args if n not in self.nodes]
                if missing:
                    raise OwenError(f"admin/ctl: {verb}: no such node {missing[0][:64]!r} "
                                    "(admin/nodes lists them)")
                for name in args:
                    (self.delnode if verb == "delnode" else self.unblacklist)(self.nodes[name])
            else:
                raise OwenError(f"admin/ctl: unknown message {verb[:40]!r}; use one of "
                                f"{ADMIN_USAGE}")
        self.dispatch()
        self.changed()
        return "".join(out)

    def group_text(self, group: frozenset | None = ...) -> str:
        group = self.group if group is ... else group
        if group is None:
            return "all\n"
        return (quote.join(sorted(group)) + "\n") if group else "none\n"

    def dump(self) -> str:
        """Every job and node, as admin/jobs and admin/nodes give them."""
        return self.jobs_text() + self.nodes_text()

    def jobs_text(self) -> str:
        lines = []
        for job in sorted(self.jobs.values(), key=lambda j: j.id):
            tally = job.tally()
            lines.append(quote.join([str(job.id), job.state, str(tally[DONE]),
                                     str(len(job.tasks)), job.owner, str(job.priority),
                                     *job.argv]) + "\n")
        return "".join(lines)

    def nodes_text(self) -> str:
        return "".join(n.line() for _, n in sorted(self.nodes.items()))

    # -- nodes --

    def connect(self, name: str, identity: str, address: str = "") -> Node:
        """A connection says it is node `name`."""
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = Node(name, identity, since=self.clock())
        elif node.connections and node.identity != identity:
            raise OwenError(f"nodename {name}: in use by {node.identity}; choose another "
                            "name (geryon worker --name)")
        node.identity, node.address = identity, address or node.address
        node.connections += 1
        self._node_state(node)
        self.changed()
        return node

    def set_attrs(self, node: Node, text: str) -> None:
        for line in text.splitlines():
            words = quote.split(line)
            if not words:
                continue
            if len(words) < 2:
                raise OwenError(f"attrs: {line[:60]!r}: write `attr value` lines")
            node.attrs[words[0]] = " ".join(words[1:])
            node._types = None
        self.note("node", node.name, node.state)
        self.dispatch()
        self.changed()

    def disconnect(self, node: Node, attempts=()) -> None:
        """A connection of node went; the attempts it carried are disconnected."""
        node.connections = max(0, node.connections - 1)
        for attempt in attempts:
            if attempt.state in ACTIVE:
                self._end(attempt, "lost", why="its worker's connection was lost")
        self._node_state(node)
        self.dispatch()
        self.changed()

    def delnode(self, node: Node) -> None:
        for attempt in list(node.attempts.values()):
            if attempt.state in ACTIVE:
                self._stop(attempt)
        for waiter in self.waiters:
            if waiter.node is node:
                waiter.gone = True
        if not node.connections:
            self.nodes.pop(node.name, None)
        self.note("node", node.name, "deleted")

    def unblacklist(self, node: Node) -> None:
        node.blacklisted_until, node.in_row = 0.0, 0
        self._node_state(node)

    def _node_state(self, node: Node) -> None:
        now = self.clock()
        if node.blacklisted_until > now:
            state = "blacklisted"
        elif not node.connections:
            state = "disconnected"
        elif any(a.state in ACTIVE for a in node.attempts.values()):
            state = "busy"
        else:
            state = "idle"
        if state != node.state:
            node.state, node.since = state, now
            self.note("node", node.name, state)

    def blacklisted(self, node: Node) -> bool:
        return node.blacklisted_until > self.clock()

    # -- matching --

    def request(self, node: Node) -> Waiter:
        """A free slot of node asks for work (its `task` file was opened)."""
        self.serial += 1
        waiter = Waiter(self.serial, node)
        node.waiting += 1
        if not self._match(waiter):
            self.waiters.append(waiter)
        return waiter

    def withdraw(self, waiter: Waiter) -> None:
        """The slot went away before or without starting its attempt."""
        if not waiter.gone:
            waiter.gone = True
            if waiter.attempt is None:
                waiter.node.waiting -= 1
        if waiter.attempt is not None and waiter.attempt.state == OFFERED:
            self._end(waiter.attempt, "close")

    def has_work(self, job: Job) -> bool:
        """Whether some node might be given a task of job now."""
        return bool(job.retry or any(job.fresh.values()) or any(
            len(job.tasks[n].active) < self.rules.copies for n in job.running))

    def dispatch(self) -> None:
        """Give every waiter that can have work its attempt, in arrival order."""
        if not self.waiters or not any(self.has_work(j) for j in self.queue()):
            return
        keep = deque()
        for waiter in self.waiters:
            if waiter.gone or waiter.attempt is not None:
                continue
            if not self._match(waiter):
                keep.append(waiter)
        self.waiters = keep

    def _match(self, waiter: Waiter) -> bool:
        if waiter.gone or waiter.attempt is not None:
            return True
        node = waiter.node
        if self.blacklisted(node) or (self.group is not None and node.name not in self.group):
            return False
        for job in self.queue():
            if job.group is not None and node.name not in job.group:
                continue
            task = self._take(job, node)
            if task is not None:
                self._assign(waiter, job, task)
                return True
        return False

    def _take(self, job: Job, node: Node) -> Task | None:
        types = node.jobtypes
        for n in [n for n in job.retry if job.tasks[n].state != PENDING]:
            job.retry.remove(n)  # finished meanwhile (a result came in by reconnect)
        for i, n in enumerate(job.retry):
            task = job.tasks[n]
            if task.jobtype in types and node.last != (job.id, n) \
                    and not any(a.node is node for a in task.active):
                del job.retry[i]
                return task
        for jobtype, fresh in job.fresh.items():
            if jobtype in types:
                while fresh:
                    task = job.tasks[fresh.popleft()]
                    if task.state == PENDING:
                        return task
        for i, n in enumerate(job.retry):   # nothing else here: a retry this node did last,
            task = job.tasks[n]                # if every other node that may did it last too
            if task.jobtype in types and not task.active and self._only(node, job, n):
                del job.retry[i]
                return task
        if job.retry or any(job.fresh.values()):
            return None
        best = None
        for n in job.running:  # a speculative copy of a running task
            task = job.tasks[n]
            if (len(task.active) < self.rules.copies
                    and task.jobtype in types and node.last != (job.id, task.n)
                    and not any(a.node is node for a in task.active)):
                key = (len(task.active), min(a.started for a in task.active))
                if best is None or key < best[0]:
                    best = (key, task)
        return best[1] if best else None

    def _only(self, node: Node, job: Job, n: int) -> bool:
        """Whether every other node that may run job's task n was given it last, so that
        keeping it from node too would leave it waiting for ever."""
        jobtype = job.tasks[n].jobtype
        return not any(other is not node and other.connections and other.last != (job.id, n)
                       and jobtype in other.jobtypes and not self.blacklisted(other)
                       and (job.group is None or other.name in job.group)
                       and (self.group is None or other.name in self.group)
                       for other in self.nodes.values())

    def _assign(self, waiter: Waiter, job: Job, task: Task) -> None:
        node = waiter.node
        now = self.clock()
        self.serial += 1
        deadline = job.deadline or self.rules.deadline
        attempt = Attempt(self.serial, job, task, node, started=now, deadline=now + deadline)
        job.move(task, "assign")
        task.active.append(attempt)
        job.running.add(task.n)
        node.attempts[f"#{attempt.serial}"] = attempt
        node.last = (job.id, task.n)
        node.waiting -= 1
        waiter.attempt = attempt
        spec = task.spec
        job.counts["datain"] += len(spec.input) + sum(len(d) for _, d in spec.files)
        job.version += 1
        self.offered.append(waiter)
        self._node_state(node)

    def take_offered(self) -> list[Waiter]:
        """The waiters given attempts since the last call (the adapter wakes them)."""
        out, self.offered = self.offered, []
        return out

    # -- attempts --

    def attempt_id(self, attempt: Attempt) -> str:
        """The name the scheduler gives an attempt (unique across its restarts too)."""
        return f"{self.boot}.{attempt.serial}"

    def started(self, attempt: Attempt, worker_id: str) -> None:
        """The worker took the attempt, named worker_id (stoptask names it so); a
        running attempt is renamed (a worker that gives its own id after the offer)."""
        if not worker_id or len(worker_id) > 128 or any(c.isspace() for c in worker_id):
            raise OwenError(f"task {attempt.taskid}: the worker's id must be one word of at "
                            "most 128 characters")
        node = attempt.node
        if node.attempts.get(worker_id, attempt) is not attempt:
            raise OwenError(f"task {attempt.taskid}: worker id {worker_id!r} is in use on "
                            f"node {node.name}")
        if attempt.state == RUNNING:
            node.attempts.pop(attempt.worker_id, None)
        else:
            attempt.state = step(ATTEMPT, attempt.state, "start", f"attempt {attempt.taskid}")
            node.attempts.pop(f"#{attempt.serial}", None)
        attempt.worker_id = worker_id
        node.attempts[worker_id] = attempt

    def result(self, attempt: Attempt, ok: bool, output: bytes, why: str = "") -> str:
        """A finished attempt's result; returns what became of it (done, duplicate,
        failed, stopped)."""
        job, task = attempt.job, attempt.task
        job.counts["dataout"] += len(output)
        if ok:
            reason = job.generator.verify(task.n, output)
            if reason:
                ok, why = False, f"the result was refused: {reason}"
        outcome = self._end(attempt, "good" if ok else "bad", output, why)
        self.dispatch()
        self.changed()
        return outcome

    def close(self, attempt: Attempt) -> None:
        """The worker closed the task file without handing in a result."""
        if attempt.state in ACTIVE:
            self._end(attempt, "close", why="the worker closed the task without a result")
            self.dispatch()
            self.changed()

    def disconnect_attempt(self, attempt: Attempt) -> None:
        """The attempt's session went away before a result: its connection may have."""
        if attempt.state in ACTIVE:
            self._end(attempt, "lost", why="its worker's session was lost")
            self.dispatch()
            self.changed()

    def reconnect(self, node: Node, taskid: str, worker_id: str, ok: bool, output: bytes,
                  why: str = "") -> str:
        """A result handed in after a lost connection (or a scheduler restart)."""
        attempt = self.reconnected(node, taskid, worker_id)
        outcome = self.result(attempt, ok, output, why)
        node.attempts.pop(worker_id, None)
        return outcome

    def reconnected(self, node: Node, taskid: str, worker_id: str) -> Attempt:
        """The attempt a result handed in through `reconnect` ends (made again when this
        scheduler no longer knows it: a restart, say); result() takes the result."""
        job, n = self.parse_taskid(taskid)
        task = job.tasks[n]
        attempt = node.attempts.get(worker_id)
        if attempt is None or attempt.task is not task:
            attempt = Attempt(0, job, task, node, state=DISCONNECTED, worker_id=worker_id,
                              started=self.clock())
        return attempt

    def parse_taskid(self, taskid: str) -> tuple[Job, int]:
        try:
            head, n = taskid.rsplit("#", 1)
            uniq, id = head.split(".", 1)
            job, n = self.jobs[int(id)], int(n)
        except (ValueError, KeyError):
            raise OwenError(f"reconnect: task {taskid[:80]!r} is not one of this scheduler's; "
                            "the job may have been deleted") from None
        if job.uniq != uniq or not 0 <= n < len(job.tasks):
            raise OwenError(f"reconnect: task {taskid[:80]!r} is not one of this scheduler's")
        return job, n

    def _stop(self, attempt: Attempt) -> None:
        before = attempt.state
        attempt.state = step(ATTEMPT, attempt.state, "stop", f"attempt {attempt.taskid}")
        if before == OFFERED:
            self._settle(attempt, "stop")
        elif before == RUNNING:
            self.tell_stop(attempt)

    def tell_stop(self, attempt: Attempt) -> None:
        """Queue the attempt's worker id for its node's `stoptask` readers."""
        attempt.node.stops.append(attempt.worker_id)
        self.stopping.add(attempt.node)

    def _end(self, attempt: Attempt, event: str, output: bytes = b"", why: str = "") -> str:
        """Move an attempt on, and its task, node and job with it."""
        before = attempt.state
        attempt.state = step(ATTEMPT, before, event, f"attempt {attempt.taskid} on "
                             f"{attempt.node.name}")
        attempt.why = why
        return self._settle(attempt, event, output)

    def _settle(self, attempt: Attempt, event: str, output: bytes = b"") -> str:
        job, task, node = attempt.job, attempt.task, attempt.node
        state = attempt.state
        now = self.clock()
        if state not in ACTIVE and attempt in task.active:
            task.active.remove(attempt)
        if state in (DONE, FAILED, STOPPED, RETURNED):
            node.attempts.pop(attempt.worker_id or f"#{attempt.serial}", None)
        outcome = state
        if job.state == DELETED:
            self._node_state(node)
            return "deleted"
        if state == DONE:
            node.completed += 1
            node.in_row = 0
            if task.state == DONE or task.state == FAILED:
                job.counts["duplicate"] += 1
                outcome = "duplicate"
            else:
                job.move(task, "good")
                task.took = max(0.0, now - attempt.started)
                job.counts["totaltime"] += task.took
                record = job.generator.record(task.n, output)
                for other in list(task.active):
                    self._stop(other)
                self.storage.finish_task(job.record(), task.n, task.failures, record)
        elif state in (FAILED, DISCONNECTED):
            task.failures += 1
            job.counts["failures"] += 1
            task.why = attempt.why or state
            if state == DISCONNECTED:
                job.counts["disconnected"] += 1
            else:
                node.failed += 1
                node.in_row += 1
                if node.in_row > self.rules.blacklist_after:
                    node.blacklisted_until = now + self.rules.parole
                    self.log(job, f"node {node.name} blacklisted after {node.in_row} "
                             "failures in a row")
            job.last_failure = f"task {task.n} on {node.name}: {task.why}"
            self.log(job, f"task {task.n} failed on {node.name}: {task.why}")
            self._requeue(job, task, failed=True)
            self.storage.save_task(job.id, task.n, task.state, task.failures)
        elif state in (STOPPED, RETURNED):
            self._requeue(job, task, failed=False)
        if task.state != RUNNING:
            job.running.discard(task.n)
        job.version += 1
        self._node_state(node)
        self._maybe_finish(job)
        return outcome

    def _requeue(self, job: Job, task: Task, failed: bool) -> None:
        if task.state in FINISHED:
            return
        limit = getattr(job.generator, "failure_limit", 5)
        if failed and task.failures >= limit:
            job.move(task, "give up")
            for other in list(task.active):
                self._stop(other)
            self.log(job, f"task {task.n} failed for good after {task.failures} failures")
            return
        if task.active or task.state == PENDING:
            return
        job.move(task, "retry")
        if failed:
            job.retry.append(task.n)
        else:
            job.retry.appendleft(task.n)

    def _maybe_finish(self, job: Job) -> None:
        if job.state in (RUNNING_JOB, STOPPED_JOB) and job.finished_all():
            self._move(job, "finish")
            job.finished = self.clock()
            self.save(job)

    # -- time --

    def tick(self) -> None:
        """What time alone changes: overdue attempts fail, blacklisted nodes are let back."""
        now = self.clock()
        for job in list(self.jobs.values()):
            for task in [job.tasks[n] for n in job.running]:
                for attempt in list(task.active):
                    if attempt.state == RUNNING and now > attempt.deadline + self.rules.grace:
                        self.tell_stop(attempt)
                        self._end(attempt, "overdue", why="it passed its deadline")
        for node in self.nodes.values():
            if node.state == "blacklisted" and node.blacklisted_until <= now:
                node.in_row = 0
                self._node_state(node)
        self.dispatch()
        self.changed()

    # -- explanations --

    def why(self, job: Job) -> str:
        """In plain words, why the job is where it is."""
        tally = job.tally()
        lines = [f"job {job.id} is {job.state}: {tally[DONE]} of {len(job.tasks)} tasks "
                 f"complete, {tally[RUNNING]} running, {tally[FAILED]} failed for good."]
        if job.state == NEW:
            lines.append("It has no task generator yet: write `load GENERATOR ARGS` to its ctl.")
        elif job.state == STOPPED_JOB:
            lines.append("It is stopped: `geryon owen ctl %d start` puts it in the queue." % job.id)
        elif job.state == RUNNING_JOB and tally[PENDING]:
            types = {t.jobtype for t in job.tasks if t.state == PENDING}
            for jobtype in sorted(types):
                lines.append(self._why_waiting(job, jobtype))
        for task in job.tasks:
            if task.state == FAILED:
                lines.append(f"task {task.n} failed for good after {task.failures} failures; "
                             f"the last: {task.why}")
                break
        else:
            if job.last_failure:
                lines.append(f"The last failure: {job.last_failure}")
        return "\n".join(lines) + "\n"

    def _why_waiting(self, job: Job, jobtype: str) -> str:
        nodes = list(self.nodes.values())
        able = [n for n in nodes if n.connections and jobtype in n.jobtypes]
        if not nodes or not any(n.connections for n in nodes):
            return f"Tasks of type {jobtype} wait: no worker is connected."
        if not able:
            return (f"Tasks of type {jobtype} wait: no connected worker has {jobtype}.job "
                    "installed (copy it into a worker's root).")
        allowed = [n for n in able if (job.group is None or n.name in job.group)
                   and (self.group is None or n.name in self.group)]
        if not allowed:
            return (f"Tasks of type {jobtype} wait: no worker with {jobtype}.job is in the "
                    f"job's group ({self.group_text(job.group).strip()}) and the global group "
                    f"({self.group_text().strip()}).")
        free = [n for n in allowed if not self.blacklisted(n)]
        if not free:
            return f"Tasks of type {jobtype} wait: every worker that could run them is blacklisted."
        if not any(n.waiting for n in free):
            return f"Tasks of type {jobtype} wait: the workers that can run them are all busy."
        return f"Tasks of type {jobtype} wait for the next dispatch."


GROUP_VERBS = ("all", "none", "set", "add", "del")


def _ctl_load(s, job, args):
    s.load(job, args)


def _ctl_group(s, job, args):
    job.group = s.set_group(job.group, args, f"job {job.id}")
    job.version += 1
    s.save(job)
    s.dispatch()


def _ctl_priority(s, job, args):
    if len(args) != 1:
        raise OwenError(f"job {job.id}: priority takes one of high, low or a number")
    s.set_priority(job, args[0])


def _ctl_deadline(s, job, args):
    try:
        seconds = float(args[0]) if len(args) == 1 else -1
    except ValueError:
        seconds = -1
    if not 0 < seconds <= 7 * 86400:
        raise OwenError(f"job {job.id}: deadline takes seconds per attempt (0 < s <= 604800)")
    job.deadline = seconds
    s.save(job)


def _no_args(method):
    def handler(s, job, args):
        if args:
            raise OwenError(f"job {job.id}: {method} takes no arguments")
        getattr(s, method)(job)
    return handler


JOB_CTL = {"load": _ctl_load, "start": _no_args("start"), "stop": _no_args("stop"),
           "teardown": _no_args("teardown"), "delete": _no_args("delete"),
           "priority": _ctl_priority, "group": _ctl_group, "kick": _no_args("kick"),
           "deadline": _ctl_deadline}
CTL_USAGE = ("load GENERATOR ARGS, start, stop, teardown, delete, priority high|low|N, "
             "group all|none|set|add|del NODES, kick, deadline SECONDS")
ADMIN_USAGE = ("dump, group all|none|set|add|del NODES, teardown, delnode NODES, "
               "unblacklist NODES")
