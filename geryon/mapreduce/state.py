"""A job's state on disk, where the driver finds it after its own crash:
$GERYON_HOME/jobs/JOB/ holds

    spec.json   the job as asked (geryon.mapreduce.job.JobSpec)
    events      one JSON object a line, appended and flushed to disk as things happen;
                replaying them rebuilds the Job (geryon.mapreduce.tasks)
    log         the same story for people, one line each
    lock        held (flock) by the driver running the job

A torn last line (the driver killed mid-write) is ignored on reading.
"""

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from geryon.config import home
from geryon.mapreduce.job import JobError, JobSpec, check_job_name
from geryon.mapreduce.tasks import Job


def jobs_dir() -> Path:
    return home() / "jobs"


@dataclass
class JobDir:
    path: Path

    @classmethod
    def of(cls, name: str) -> "JobDir":
        return cls(jobs_dir() / check_job_name(name))

    @classmethod
    def create(cls, spec: JobSpec) -> "JobDir":
        job = cls.of(spec.name)
        try:
            job.path.mkdir(parents=True)
        except FileExistsError:
            raise JobError(f"job {spec.name} exists already ({job.path}); name another, "
                           f"or carry it on with --resume {spec.name}") from None
        tmp = job.path / "spec.json.tmp"
        tmp.write_text(json.dumps(spec.to_dict(), indent=1) + "\n")
        os.replace(tmp, job.path / "spec.json")
        return job

    @property
    def name(self) -> str:
        return self.path.name

    def spec(self) -> JobSpec:
        try:
            return JobSpec.from_dict(json.loads((self.path / "spec.json").read_text()))
        except FileNotFoundError:
            raise JobError(f"no job {self.name} here ({self.path} has no spec.json); "
                           "`geryon jobs` lists the jobs") from None
        except (ValueError, TypeError) as err:
            raise JobError(f"job {self.name}: {self.path / 'spec.json'} cannot be read "
                           f"({err})") from None

    def events(self) -> list[dict]:
        try:
            data = (self.path / "events").read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # the torn tail of a crash, or nothing
        return out

    def job(self, prefer=None) -> Job:
        """The Job as its events leave it."""
        job = Job(self.spec(), prefer)
        for event in self.events():
            job.apply(event)
        return job

    def log_text(self) -> str:
        try:
            return (self.path / "log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def locked(self) -> bool:
        """Whether a driver holds the job now."""
        try:
            fd = os.open(self.path / "lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


class JobWriter:
    """The driver's hold on a job's directory: the lock, and the events and log files."""

    def __init__(self, job_dir: JobDir):
        self.dir = job_dir
        self.lock = os.open(job_dir.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock)
            raise JobError(f"job {job_dir.name} is being run by another driver now; "
                           "follow it with `geryon jobs`") from None
        os.ftruncate(self.lock, 0)
        os.write(self.lock, f"{os.getpid()}\n".encode())
        self.events = open(job_dir.path / "events", "ab")
        self.log_file = open(job_dir.path / "log", "a", encoding="utf-8", errors="replace")

    def record(self, event: dict) -> None:
        self.events.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        self.events.flush()
        os.fsync(self.events.fileno())

    def log(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        for line in text.rstrip("\n").split("\n"):
            self.log_file.write(f"{stamp} {line}\n")
        self.log_file.flush()

    def close(self) -> None:
        self.events.close()
        self.log_file.close()
        os.close(self.lock)


def local_jobs() -> list[JobDir]:
    """Every job with state here, oldest first."""
    try:
        found = [JobDir(p) for p in jobs_dir().iterdir() if (p / "spec.json").exists()]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda j: (j.path / "spec.json").stat().st_mtime)
