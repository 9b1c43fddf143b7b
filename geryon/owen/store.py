"""Where the scheduler keeps jobs, tasks and results: one small interface, two backends.

Storage is what the scheduling core (geryon.owen.core) asks of a place to keep its state:
jobs as JobRecords, the tasks that finished (done or failed for good, with their failure
counts), each job's result, and a directory per job for its input (`data`).  A task's
result is appended in the same transaction that marks it done, so a scheduler killed at
any moment has either both or neither: restarted, it runs the task again or not at all,
and no result is lost or written twice.

Finished tasks are group-committed: finish_task may leave its transaction open, and
flush() commits every finish since the last one at once (any other change commits them
too, before its call returns).  A result counts as kept, and its worker is answered, only
after a flush (geryon.owen.tree does this once per turn of the event loop), so a worker
that was answered never loses its result, and one that was not hands it in again.

MemoryStorage keeps everything but the data files in memory (tests, and a scheduler with
no state to keep); SQLiteStorage keeps it in `sched.db` (WAL) in the state directory.
Both pass the one contract suite, tests/test_owen_store.py (as geryon.registry.store does).
"""

import json
import shutil
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path

from geryon import quote
from geryon.errors import GeryonError


@dataclass(frozen=True)
class JobRecord:
    """A job as kept: everything about it but its tasks (its generator makes those again
    from argv and its data directory)."""

    id: int
    owner: str
    uniq: str
    state: str
    priority: int = 0
    group: tuple | None = None       # None: any node
    description: str = ""
    argv: tuple = ()
    deadline: float = 0.0
    created: float = 0.0
    finished: float = 0.0
    counts: dict = field(default_factory=dict)


class Storage(ABC):
    """A place to keep the scheduler's jobs, finished tasks and results."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def data_dir(self, job: int) -> Path:
        """The job's own directory (its `data` file lives there); made if need be."""
        path = self.directory / "jobs" / str(job)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _drop_dir(self, job: int) -> None:
        shutil.rmtree(self.directory / "jobs" / str(job), ignore_errors=True)

    @abstractmethod
    def new_job_id(self) -> int:
        """A job number never given before (not even to a deleted job)."""

    @abstractmethod
    def save_job(self, job: JobRecord) -> None:
        """Keep job, replacing what was kept under its id."""

    @abstractmethod
    def delete_job(self, job: int) -> None:
        """Forget the job, its tasks, its result and its directory."""

    @abstractmethod
    def jobs(self) -> list[JobRecord]:
        """Every job kept, by id."""

    @abstractmethod
    def save_task(self, job: int, n: int, state: str, failures: int) -> None:
        """Keep task n's state and failure count."""

    @abstractmethod
    def tasks(self, job: int) -> dict[int, tuple[str, int]]:
        """Task number -> (state, failures) for every task kept."""

    @abstractmethod
    def finish_task(self, job: JobRecord, n: int, failures: int, record: bytes) -> None:
        """At once: task n is done, record is appended to the result, job is saved; kept
        for good at the next flush() (or any other change)."""

    def flush(self) -> None:
        """Make every finish_task so far permanent."""

    @abstractmethod
    def result(self, job: int, offset: int = 0, size: int = -1) -> bytes:
        """The job's result so far (or size bytes of it from offset)."""

    @abstractmethod
    def result_size(self, job: int) -> int:
        """How many bytes the job's result holds."""

    def close(self) -> None:
        """Let go of what the storage holds open."""


class MemoryStorage(Storage):
    """State kept in memory; job data files in a directory."""

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.next_id = 1
        self.kept: dict[int, JobRecord] = {}
        self.task_rows: dict[int, dict[int, tuple[str, int]]] = {}
        self.results: dict[int, bytearray] = {}

    def new_job_id(self):
        id, self.next_id = self.next_id, self.next_id + 1
        return id

    def save_job(self, job):
        self.kept[job.id] = replace(job, counts=dict(job.counts))

    def delete_job(self, job):
        self.kept.pop(job, None)
        self.task_rows.pop(job, None)
        self.results.pop(job, None)
        self._drop_dir(job)

    def jobs(self):
        return [replace(j, counts=dict(j.counts)) for _, j in sorted(self.kept.items())]

    def save_task(self, job, n, state, failures):
        self.task_rows.setdefault(job, {})[n] = (state, failures)

    def tasks(self, job):
        return dict(self.task_rows.get(job, {}))

    def finish_task(self, job, n, failures, record):
        self.save_job(job)
        self.save_task(job.id, n, "done", failures)
        self.results.setdefault(job.id, bytearray()).extend(record)

    def result(self, job, offset=0, size=-1):
        data = self.results.get(job, b"")
        return bytes(data[offset:] if size < 0 else data[offset:offset + size])

    def result_size(self, job):
        return len(self.results.get(job, b""))


SCHEMA = """
create table if not exists meta (key text primary key, value integer not null);
create table if not exists job (id integer primary key, owner text not null,
    uniq text not null, state text not null, priority integer not null, grp text,
    description text not null, argv text not null, deadline real not null,
    created real not null, finished real not null, counts text not null);
create table if not exists task (job integer not null, n integer not null,
    state text not null, failures integer not null, primary key (job, n));
create table if not exists result (seq integer primary key autoincrement,
    job integer not null, n integer not null, start integer not null, data blob not null);
create index if not exists result_job on result (job, start);
"""


class SQLiteStorage(Storage):
    """State kept in `sched.db` (SQLite, WAL) in a state directory, each change committed
    before the call returns, but finish_task, whose transaction flush() commits (with
    synchronous=normal a commit is in the WAL file, so a killed process loses none)."""

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.path = self.directory / "sched.db"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("pragma journal_mode=wal")
            self.db.execute("pragma synchronous=normal")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise GeryonError(f"scheduler state {self.path}: {err}; give --state a directory "
                              "of its own (a damaged sched.db can be moved aside: its jobs "
                              "are then lost)") from None
        self.sizes: dict[int, int] = {}
        self.dirty: dict[int, JobRecord] = {}   # saved at the next flush

    def new_job_id(self):
        self.flush()
        with self.db:
            self.db.execute("begin immediate")
            row = self.db.execute("select value from meta where key = 'next_job'").fetchone()
            top = self.db.execute("select max(id) from job").fetchone()[0] or 0
            id = max(row[0] if row else 1, top + 1)
            self.db.execute("insert or replace into meta values ('next_job', ?)", (id + 1,))
        return id

    def _save(self, job):
        self.db.execute(
            "insert or replace into job values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.owner, job.uniq, job.state, job.priority,
             None if job.group is None else quote.join(job.group), job.description,
             quote.join(job.argv), job.deadline, job.created, job.finished,
             json.dumps(job.counts, sort_keys=True)))

    def flush(self):
        if self.dirty:   # the jobs whose tasks finished: saved once a commit, not a task
            if not self.db.in_transaction:
                self.db.execute("begin")
            for job in self.dirty.values():
                self._save(job)
            self.dirty.clear()
        if self.db.in_transaction:
            try:
                self.db.commit()
            except sqlite3.Error:
                self.db.rollback()
                self.sizes.clear()
                self.dirty.clear()
                raise

    def save_job(self, job):
        self.dirty.pop(job.id, None)
        self._save(job)
        self.flush()

    def delete_job(self, job):
        self.dirty.pop(job, None)
        with self.db:
            if not self.db.in_transaction:
                self.db.execute("begin")
            for table, key in (("job", "id"), ("task", "job"), ("result", "job")):
                self.db.execute(f"delete from {table} where {key} = ?", (job,))
        self.sizes.pop(job, None)
        self._drop_dir(job)

    def jobs(self):
        out = {}
        for row in self.db.execute("select * from job order by id").fetchall():
            (id, owner, uniq, state, priority, grp, description, argv, deadline, created,
             finished, counts) = row
            out[id] = JobRecord(id, owner, uniq, state, priority,
                                None if grp is None else tuple(quote.split(grp)), description,
                                tuple(quote.split(argv)), deadline, created, finished,
                                json.loads(counts))
        out.update((id, replace(job, counts=dict(job.counts))) for id, job in self.dirty.items())
        return [job for _, job in sorted(out.items())]

    def save_task(self, job, n, state, failures):
        self.db.execute("insert or replace into task values (?, ?, ?, ?)",
                        (job, n, state, failures))
        self.flush()

    def tasks(self, job):
        rows = self.db.execute("select n, state, failures from task where job = ?", (job,))
        return {n: (state, failures) for n, state, failures in rows.fetchall()}

    def finish_task(self, job, n, failures, record):
        start = self.result_size(job.id)
        if not self.db.in_transaction:
            self.db.execute("begin")
        self.db.execute("savepoint finish")   # a failure undoes this finish, not the others
        try:
            self.db.execute("insert or replace into task values (?, ?, 'done', ?)",
                            (job.id, n, failures))
            self.db.execute("insert into result (job, n, start, data) values (?, ?, ?, ?)",
                            (job.id, n, start, bytes(record)))
        except sqlite3.Error:
            self.db.execute("rollback to finish")
            raise
        finally:
            self.db.execute("release finish")
        self.sizes[job.id] = start + len(record)
        self.dirty[job.id] = job

    def result(self, job, offset=0, size=-1):
        end = None if size < 0 else offset + size
        rows = self.db.execute(
            "select start, data from result where job = ? and start + length(data) > ? "
            + ("and start < ? " if end is not None else "") + "order by start",
            (job, offset, *(() if end is None else (end,))))
        parts = []
        for start, data in rows.fetchall():
            lo = max(0, offset - start)
            hi = len(data) if end is None else min(len(data), end - start)
            parts.append(data[lo:hi])
        return b"".join(parts)

    def result_size(self, job):
        if job not in self.sizes:
            row = self.db.execute("select coalesce(sum(length(data)), 0) from result "
                                  "where job = ?", (job,)).fetchone()
            self.sizes[job] = row[0]
        return self.sizes[job]

    def close(self):
        self.flush()
        self.db.close()
