"""The table of a job's tasks and the rules that run them: pure, no I/O, no clock of its
own.  The driver (geryon.mapreduce.driver) turns what happens into events, applies each
to a Job (and appends it to the job's file, so that replaying the file rebuilds the Job
after a crash) and asks the Job what to start next.

Events (dicts, as stored):

    start  task n cpu host disk backup t   an attempt was sent to a cpu, writing on disk
    done   task n t sizes counters         it exited 0: what it wrote was committed
    fail   task n t why stderr counted     it failed, died with its cpu, timed out, or was
                                           stopped by us (counted false: not its fault)
    lost   task why                        the winner's output went with its node
    copy   task n host disk t              a reduce's winning part copied to another node
    cleaned t                              the clean-up removed the map outputs
    end    state why                       done or failed

Rules.  Maps run first, one per input disk; reduces only when every map has a winner.  A
task's first attempt to succeed wins; later ones are spare.  A failure counted against a
task sends it to another cpu (one it has not failed on, while there is one); the
`attempts`-th counted failure fails the job.  A pending task goes to a cpu with a free
slot, preferring one on a node that holds its input, then the least busy, then the next
in turn.  When a phase has nothing pending and slots are free, a task running well past
the phase's typical time gets one backup attempt elsewhere.
"""

import statistics
from dataclasses import dataclass, field

from geryon.mapreduce.job import JobSpec, add_counters, map_prefix, part_path

RUNNING, DONE, FAILED, SPARE, LOST = "running", "done", "failed", "spare", "lost"
BACKUP_FACTOR = 1.5    # a straggler has run this many times the phase's median...
BACKUP_MIN = 3.0       # ... and at least this many seconds


@dataclass
class Attempt:
    task: str
    number: int
    cpu: str
    host: str
    disk: str
    started: float
    backup: bool = False
    state: str = RUNNING
    ended: float = 0.0
    why: str = ""
    stderr: str = ""
    sizes: tuple[int, ...] = ()
    counters: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Task:
    id: str            # m0, r3
    kind: str          # map or reduce
    index: int
    input: str = ""    # a map's input disk
    attempts: list[Attempt] = field(default_factory=list)
    failures: int = 0
    winner: Attempt | None = None
    copies: list[tuple[str, str]] = field(default_factory=list)  # the winner's (host, disk)
    stale_copies: list[tuple[str, str]] = field(default_factory=list)  # of a lost winner

    @property
    def running(self) -> list[Attempt]:
        return [a for a in self.attempts if a.state == RUNNING]

    @property
    def state(self) -> str:
        return DONE if self.winner else RUNNING if self.running else "pending"

    @property
    def failed_on(self) -> set[str]:
        return {a.cpu for a in self.attempts if a.state == FAILED}

    def label(self) -> str:
        return (f"map {self.index} ({self.input})" if self.kind == "map"
                else f"reduce {self.index}")


@dataclass(frozen=True)
class Cpu:
    name: str      # its registry name, tcp!host!port
    host: str      # the node's name
    slots: int


@dataclass(frozen=True)
class Start:
    task: Task
    cpu: Cpu
    number: int
    backup: bool


class Job:
    """A job's tasks, rebuilt from its events."""

    def __init__(self, spec: JobSpec, prefer: dict[str, set[str]] | None = None):
        self.spec = spec
        self.maps = [Task(f"m{k}", "map", k, disk) for k, disk in enumerate(spec.disks)]
        self.reduces = [Task(f"r{r}", "reduce", r) for r in range(spec.partitions)]
        self.tasks = {t.id: t for t in self.maps + self.reduces}
        self.prefer = prefer or {}   # task id -> hosts holding its input
        self.outcome = ""            # done or failed, once the job has ended
        self.why = ""
        self.turn = 0
        self.cleaned = False         # the clean-up removed the map outputs
        self.started = spec.created
        self.ended = 0.0

    # ---- events ------------------------------------------------------------------------

    def apply(self, event: dict) -> None:
        kind = event["ev"]
        if kind == "cleaned":
            self.cleaned = True
            return
        if kind == "end":
            self.outcome, self.why, self.ended = event["state"], event.get("why", ""), \
                event.get("t", 0.0)
            return
        task = self.tasks[event["task"]]
        if kind == "start":
            task.attempts.append(Attempt(task.id, event["n"], event["cpu"], event["host"],
                                         event["disk"], event["t"], event.get("backup", False)))
            return
        if kind == "lost":
            if task.kind == "map":
                self.cleaned = False  # its output is made again, and cleaned again
            if task.winner is not None:
                task.winner.state, task.winner.why = LOST, event.get("why", "")
                task.winner = None
                task.stale_copies += task.copies
                task.copies = []
            return
        if kind == "copy":
            if task.winner is not None and task.winner.number == event["n"]:
                task.copies.append((event["host"], event["disk"]))
            return
        attempt = self.attempt(task, event["n"])
        if attempt is None or attempt.state != RUNNING:
            return  # a second word on an attempt already ended changes nothing
        attempt.ended = event["t"]
        if kind == "done":
            attempt.sizes = tuple(event.get("sizes", ()))
            attempt.counters = {tuple(k.split(",", 1)): v
                                for k, v in event.get("counters", {}).items()}
            if task.winner is None:
                attempt.state, task.winner = DONE, attempt
            else:
                attempt.state = SPARE
        elif kind == "fail":
            attempt.state = FAILED if event.get("counted", True) else SPARE
            attempt.why, attempt.stderr = event.get("why", ""), event.get("stderr", "")
            if event.get("counted", True):
                task.failures += 1
        else:
            raise ValueError(f"unknown event {kind!r}")

    def attempt(self, task: Task, number: int) -> Attempt | None:
        return next((a for a in task.attempts if a.number == number), None)

    def abandon_running(self, now: float, why: str) -> list[dict]:
        """Events ending every attempt still running (the driver that ran them is gone,
        and with it their connections, so their cpus killed them)."""
        return [{"ev": "fail", "task": a.task, "n": a.number, "t": now, "why": why,
                 "counted": False} for t in self.tasks.values() for a in t.running]

    # ---- where the job is --------------------------------------------------------------

    @property
    def phase(self) -> str:
        if self.outcome:
            return self.outcome
        if any(t.winner is None for t in self.maps):
            return "map"
        if any(t.winner is None for t in self.reduces):
            return "reduce"
        return "finishing"

    def phase_tasks(self) -> list[Task]:
        return self.maps if self.phase == "map" else self.reduces

    def next_number(self, task: Task) -> int:
        return max((a.number for a in task.attempts), default=0) + 1

    def exhausted(self, task: Task) -> bool:
        return task.failures >= self.spec.attempts

    def running(self) -> list[Attempt]:
        return [a for t in self.tasks.values() for a in t.running]

    def counts(self, tasks: list[Task]) -> dict:
        return {"done": sum(t.winner is not None for t in tasks),
                "running": sum(bool(t.running) and t.winner is None for t in tasks),
                "failed": sum(t.failures for t in tasks), "total": len(tasks)}

    def counters(self) -> dict:
        """The reporter counters of every winning attempt, summed."""
        total: dict = {}
        for task in self.tasks.values():
            if task.winner is not None:
                add_counters(total, task.winner.counters)
        return total

    def map_inputs(self) -> list[tuple[str, str]]:
        """(disk, file prefix) of every map's winning attempt, in map order."""
        return [(t.winner.disk, map_prefix(self.spec.name, t.index, t.winner.number))
                for t in self.maps]

    def parts(self) -> list[tuple[int, str, str]]:
        """(partition, disk, path) of every reduce's winning attempt."""
        return [(t.index, t.winner.disk, part_path(self.spec.name, t.index, t.winner.number))
                for t in self.reduces if t.winner is not None]

    def part_places(self) -> list[tuple[int, str, list[str]]]:
        """(partition, path, disks holding it: the winner's, then its copies')."""
        return [(t.index, part_path(self.spec.name, t.index, t.winner.number),
                 [t.winner.disk, *(disk for _, disk in t.copies)])
                for t in self.reduces if t.winner is not None]

    def needed_hosts(self) -> set[str]:
        """Nodes holding winning output the job still needs."""
        winners = [t.winner for t in self.reduces if t.winner]
        if self.phase in ("map", "reduce"):
            winners += [t.winner for t in self.maps if t.winner]
        return {a.host for a in winners}

    def lost_on(self, host: str, why: str, gone: set[str] = frozenset()) -> list[dict]:
        """Events for the winners whose output was on a node that is gone (and not on a
        copy on a node that is not gone too).  Once the clean-up has removed the map
        outputs, a reduce that must run again needs every map to run again too."""
        tasks = self.reduces + (self.maps if self.phase in ("map", "reduce") else [])
        dead = {host, *gone}
        lost = [t for t in tasks if t.winner is not None and t.winner.host == host
                and not any(h not in dead for h, _ in t.copies)]
        if self.cleaned and any(t.kind == "reduce" for t in lost):
            lost += [t for t in self.maps if t.winner is not None and t not in lost]
        return [{"ev": "lost", "task": t.id,
                 "why": why if t.winner.host == host else
                 "its output was removed by the clean-up, and a reduce must run again"}
                for t in lost]

    def written(self) -> dict[tuple[str, str], list[str]]:
        """(cpu host, disk) -> the paths of spare and lost part files on it: what a
        completed job's clean-up removes beside the map outputs.  The disks holding
        copies are there too, with nothing to remove (a failed job's clean-up removes
        everything of the job from each)."""
        disks: dict[tuple[str, str], list[str]] = {}
        for task in self.tasks.values():
            for a in task.attempts:
                paths = disks.setdefault((a.host, a.disk), [])
                if task.kind == "reduce" and a is not task.winner:
                    paths.append(part_path(self.spec.name, task.index, a.number))
            for place in task.copies + task.stale_copies:
                disks.setdefault(place, [])
        return disks

    # ---- what to do next ---------------------------------------------------------------

    def overdue(self, now: float) -> list[Attempt]:
        if not self.spec.timeout:
            return []
        return [a for a in self.running() if now - a.started > self.spec.timeout]

    def superfluous(self) -> list[Attempt]:
        """Attempts still running for tasks that have a winner: stop them."""
        return [a for t in self.tasks.values() if t.winner is not None for a in t.running]

    def plan(self, cpus: list[Cpu], now: float) -> list[Start]:
        """What to start now on these cpus (the live ones)."""
        if self.outcome or self.phase == "finishing" or not cpus:
            return []
        busy = {c.name: 0 for c in cpus}
        for a in self.running():
            if a.cpu in busy:
                busy[a.cpu] += 1
        free = {c.name: c.slots - busy[c.name] for c in cpus}
        starts = []
        tasks = self.phase_tasks()
        pending = [t for t in tasks if t.state == "pending"]
        for task in pending:
            cpu = self._choose(task, cpus, free, busy)
            if cpu is not None:
                starts.append(Start(task, cpu, self.next_number(task), False))
        if pending or not self.spec.backups or not any(v > 0 for v in free.values()):
            return starts
        times = [t.winner.seconds for t in tasks if t.winner is not None]
        if not times:
            return starts
        threshold = max(BACKUP_MIN, BACKUP_FACTOR * statistics.median(times))
        stragglers = sorted((t for t in tasks if t.winner is None and len(t.running) == 1
                             and now - t.running[0].started > threshold),
                            key=lambda t: t.running[0].started)
        for task in stragglers:
            cpu = self._choose(task, cpus, free, busy, avoid={task.running[0].cpu})
            if cpu is not None:
                starts.append(Start(task, cpu, self.next_number(task), True))
        return starts

    def _choose(self, task: Task, cpus: list[Cpu], free: dict, busy: dict,
                avoid: set[str] = frozenset()) -> Cpu | None:
        live = [c for c in cpus if c.name not in avoid]
        fresh = [c for c in live if c.name not in task.failed_on]
        allowed = fresh or live  # another cpu while there is one; else any
        candidates = [c for c in allowed if free[c.name] > 0]
        if not candidates:
            return None
        near = self.prefer.get(task.id, set())
        turn = self.turn
        self.turn += 1
        order = {c.name: (i - turn) % len(cpus) for i, c in enumerate(cpus)}
        cpu = min(candidates, key=lambda c: (c.host not in near, busy[c.name],
                                             order[c.name]))
        free[cpu.name] -= 1
        busy[cpu.name] += 1
        return cpu
