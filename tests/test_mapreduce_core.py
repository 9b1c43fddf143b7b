"""The mapreduce driver's pure parts: the task table and its rules, stepped with made-up
times and events; the blocks it writes; the reporter lines it reads."""

import subprocess

import pytest
from hypothesis import given, strategies as st

from geryon.mapreduce.job import (JobError, JobSpec, Reporter, cleanup_block, copy_block,
                                  map_block, reduce_block)
from geryon.mapreduce.tasks import Cpu, Job

CPUS = [Cpu("tcp!h0!1", "node0", 2), Cpu("tcp!h1!1", "node1", 2), Cpu("tcp!h2!1", "node2", 2)]


def spec(**kw):
    base = dict(name="j1", map="idx /n/d*/*", reduce="agg", disks=("d0.m", "d1.m", "d2.m"),
                partitions=2)
    return JobSpec(**{**base, **kw})


def start(job, s, t):
    job.apply({"ev": "start", "task": s.task.id, "n": s.number, "cpu": s.cpu.name,
               "host": s.cpu.host, "disk": f"{s.cpu.host}.cpu", "backup": s.backup, "t": t})


def done(job, task, n, t, sizes=(1, 1)):
    job.apply({"ev": "done", "task": task, "n": n, "t": t, "sizes": list(sizes),
               "counters": {"geryon,map input bytes": 10}})


def fail(job, task, n, t, counted=True):
    job.apply({"ev": "fail", "task": task, "n": n, "t": t, "why": "exit status 1",
               "counted": counted})


def test_maps_go_to_the_node_holding_their_disk_then_the_least_busy():
    job = Job(spec(), prefer={"m0": {"node2"}, "m1": {"node2"}, "m2": {"node2"}})
    starts = job.plan(CPUS, 0)
    assert [(s.task.id, s.cpu.host) for s in starts][:2] == [("m0", "node2"), ("m1", "node2")]
    assert starts[2].cpu.host != "node2"  # node2's two slots are taken
    assert job.plan(CPUS, 0)[0].task.id == "m0"  # planning twice starts nothing twice...
    for s in starts:
        start(job, s, 0)
    assert job.plan(CPUS, 1) == []  # ...once the starts are recorded


def test_reduces_wait_for_every_map_then_read_the_winners():
    job = Job(spec())
    for s in job.plan(CPUS, 0):
        start(job, s, 0)
    done(job, "m0", 1, 1)
    done(job, "m1", 1, 1)
    assert job.phase == "map" and job.plan(CPUS, 1) == []
    done(job, "m2", 1, 2)
    assert job.phase == "reduce"
    assert [s.task.id for s in job.plan(CPUS, 2)] == ["r0", "r1"]
    assert job.map_inputs()[0] == (job.maps[0].winner.disk, "j1/map/m0.a1.p")


def test_a_failed_task_goes_to_another_cpu_and_its_last_failure_fails_the_job():
    job = Job(spec(attempts=2, disks=("d0.m",)))
    first = job.plan(CPUS, 0)[0]
    start(job, first, 0)
    fail(job, "m0", 1, 1)
    second = job.plan(CPUS, 1)[0]
    assert second.number == 2 and second.cpu != first.cpu
    start(job, second, 1)
    fail(job, "m0", 2, 2)
    assert job.exhausted(job.maps[0])


def test_a_failure_that_is_not_the_tasks_fault_is_not_counted():
    job = Job(spec(attempts=1, disks=("d0.m",)))
    start(job, job.plan(CPUS, 0)[0], 0)
    fail(job, "m0", 1, 1, counted=False)
    assert not job.exhausted(job.maps[0]) and job.plan(CPUS, 1)[0].number == 2


def test_a_straggler_gets_one_backup_and_the_first_to_finish_wins():
    job = Job(spec())
    for s in job.plan(CPUS, 0):
        start(job, s, 0)
    done(job, "m0", 1, 1)
    done(job, "m1", 1, 1)
    assert job.plan(CPUS, 2) == []           # not yet past max(3 s, 1.5 x median)
    backup = job.plan(CPUS, 4)
    assert [(s.task.id, s.backup) for s in backup] == [("m2", True)]
    assert backup[0].cpu.name != job.maps[2].running[0].cpu
    start(job, backup[0], 4)
    assert job.plan(CPUS, 9) == []           # one backup at a time
    done(job, "m2", 2, 5)
    assert job.maps[2].winner.number == 2
    assert [(a.task, a.number) for a in job.superfluous()] == [("m2", 1)]
    done(job, "m2", 1, 6)                    # it committed too: spare, and cleaned up
    assert job.maps[2].winner.number == 2 and job.maps[2].attempts[0].state == "spare"


def test_a_lost_winner_runs_again_and_the_job_goes_back_to_the_map_phase():
    job = Job(spec(disks=("d0.m",)))
    s = job.plan(CPUS, 0)[0]
    start(job, s, 0)
    done(job, "m0", 1, 1)
    assert job.phase == "reduce" and job.needed_hosts() == {s.cpu.host}
    for event in job.lost_on(s.cpu.host, "gone"):
        job.apply(event)
    assert job.phase == "map" and job.plan(CPUS, 2)[0].number == 2


def finished(job):
    """Every map and the one reduce done: the job is finishing."""
    start(job, job.plan(CPUS, 0)[0], 0)
    done(job, "m0", 1, 1)
    r = job.plan(CPUS, 2)[0]
    start(job, r, 2)
    done(job, "r0", 1, 3)
    assert job.phase == "finishing"
    return r.cpu.host


def test_a_part_copied_is_read_from_either_disk_and_outlives_its_node():
    job = Job(spec(disks=("d0.m",), partitions=1))
    host = finished(job)
    assert job.part_places() == [(0, "j1/part0.a1", [f"{host}.cpu"])]
    job.apply({"ev": "copy", "task": "r0", "n": 7, "host": "x", "disk": "x.cpu"})  # stale
    job.apply({"ev": "copy", "task": "r0", "n": 1, "host": "node9", "disk": "d9.cpu"})
    assert job.part_places() == [(0, "j1/part0.a1", [f"{host}.cpu", "d9.cpu"])]
    assert job.lost_on(host, "gone") == []  # its copy is on a node that is not gone
    events = job.lost_on(host, "gone", gone={"node9"})  # both are gone: it runs again
    assert [e["task"] for e in events] == ["r0"]
    for event in events:
        job.apply(event)
    assert job.part_places() == [] and job.reduces[0].copies == []
    assert ("node9", "d9.cpu") in job.written()  # a failed job's clean-up goes there too


def test_a_part_lost_after_the_clean_up_makes_the_maps_run_again():
    job = Job(spec(disks=("d0.m",), partitions=1))
    host = finished(job)
    job.apply({"ev": "cleaned", "t": 4})
    events = job.lost_on(host, "gone")
    assert sorted(e["task"] for e in events) == ["m0", "r0"]
    for event in events:
        job.apply(event)
    assert job.phase == "map" and not job.cleaned


def test_the_copy_block_keeps_only_a_whole_copy(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "cpudisk": str(tmp_path / "out")}
    block = copy_block("j1/part0.a1", 5)
    ran = subprocess.run(["bash", "-c", block], input=b"12345", capture_output=True, env=env)
    assert ran.returncode == 0 and (tmp_path / "out/j1/part0.a1").read_bytes() == b"12345"
    ran = subprocess.run(["bash", "-c", block], input=b"123", capture_output=True, env=env)
    assert ran.returncode == 1 and b"the copy came short" in ran.stderr


def test_timeouts_and_replay_after_a_crash():
    job = Job(spec(timeout=5, disks=("d0.m",)))
    start(job, job.plan(CPUS, 0)[0], 0)
    assert job.overdue(4) == [] and len(job.overdue(6)) == 1
    stopped = job.abandon_running(7, "the driver went")
    assert stopped and not stopped[0]["counted"]
    for event in stopped:
        job.apply(event)
    assert job.running() == [] and job.plan(CPUS, 8)[0].number == 2


def test_specs_that_cannot_run_say_why():
    with pytest.raises(JobError, match="partitions must be 1 to"):
        spec(partitions=0)
    with pytest.raises(JobError, match="named twice"):
        spec(disks=("d0.m", "d0.m"))
    with pytest.raises(JobError, match="job name"):
        spec(name="a b")
    one = spec()
    assert JobSpec.from_dict(one.to_dict()) == one


def run_bash(text, cwd, env=None):
    return subprocess.run(["bash", "-c", text], cwd=cwd, capture_output=True, env=env)


def test_the_map_and_reduce_blocks_run_as_bash(tmp_path):
    """The blocks with /n/... paths turned into local ones: the map writes R partitions
    and reports their sizes; the reduce sorts and reduces them."""
    import os
    import sys
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
           "cpudisk": str(tmp_path / "out")}
    (tmp_path / "n" / "d0.m").mkdir(parents=True)
    (tmp_path / "n" / "d0.m" / "f").write_text("b a b\nc\n")
    s = spec(map="idx /n/d0.m/*", disks=("d0.m",), combiner="agg")
    block = map_block(s, 0, 1).replace("/n/d0.m", f"{tmp_path}/n/d0.m")
    ran = run_bash(block, tmp_path, env)
    assert ran.returncode == 0, ran.stderr
    reporter = Reporter()
    reporter.feed(ran.stderr)
    reporter.close()
    assert len(reporter.sizes) == 2 and sum(reporter.sizes) == len("a 1\nb 2\nc 1\n")
    assert reporter.counters[("geryon", "map input bytes")] == 8
    os.symlink(tmp_path / "out", tmp_path / "n" / "d9.cpu")
    block = reduce_block(s, 0, 1, [("d9.cpu", "j1/map/m0.a1.p")]).replace(
        "/n/d9.cpu", f"{tmp_path}/n/d9.cpu")
    assert run_bash(block, tmp_path, env).returncode == 0
    block = reduce_block(s, 1, 1, [("d9.cpu", "j1/map/m0.a1.p")]).replace(
        "/n/d9.cpu", f"{tmp_path}/n/d9.cpu")
    assert run_bash(block, tmp_path, env).returncode == 0
    parts = b"".join((tmp_path / "out" / "j1" / f"part{r}.a1").read_bytes() for r in (0, 1))
    assert sorted(parts.splitlines()) == [b"a 1", b"b 2", b"c 1"]
    assert run_bash(cleanup_block("j1", ["j1/part1.a1"], False), tmp_path, env).returncode == 0
    assert sorted(p.name for p in (tmp_path / "out" / "j1").iterdir()) == ["part0.a1"]


REPORT = (b"noise\nreporter:counter:words,seen,3\nreporter:status:half way\n"
          b"reporter:counter:words,seen,4\ngeryon:partitions 1 2 3\nlast words")


@given(st.lists(st.integers(0, len(REPORT)), max_size=8))
def test_reports_read_the_same_however_the_stream_is_cut(cuts):
    reporter = Reporter()
    at = 0
    for cut in sorted(cuts):
        reporter.feed(REPORT[at:cut])
        at = cut
    reporter.feed(REPORT[at:])
    reporter.close()
    assert reporter.counters == {("words", "seen"): 7}
    assert reporter.status == "half way" and reporter.sizes == [1, 2, 3]
    assert reporter.stderr == "noise\nlast words\n"


@given(st.binary(max_size=3000))
def test_any_bytes_on_stderr_are_kept_in_a_bounded_tail(data):
    reporter = Reporter()
    reporter.feed(data * 10)
    reporter.close()
    assert len(reporter.stderr.encode("utf-8", "surrogateescape")) <= 4 * Reporter.TAIL
