"""filesplit -k and -a (work directories kept), a job's (script NAME) run on the scheduler,
and the worker's runner shell, with real processes on loopback."""

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from support import wait_for
from test_owen_sched import cluster, owen  # noqa: F401 (the fixture: a scheduler, 2 workers)

from geryon.owen.records import read_records
from geryon.owen.runner import Runner, command_line

FAILING = '{ read l; case "$l" in bad*) echo "no: $l" >&2; exit 3;; esac; echo "ok $l"; }'


def kept(tmp: Path) -> list[Path]:
    """The kept working directories of both workers (the runners' own directories hold
    neither stderr nor a result between tasks)."""
    return [d for d in sorted(tmp.glob("w?/work/*"))
            if (d / "result").exists() or (d / ".geryon-stderr").exists()
            and (d / ".geryon-stderr").stat().st_size]


def kept_dirs(tmp: Path) -> list[tuple[bytes, bytes, bool]]:
    """(input, stderr, has a result) of each kept working directory."""
    return [((d / ".geryon-input").read_bytes(), (d / ".geryon-stderr").read_bytes(),
             (d / "result").exists()) for d in kept(tmp)]


def run_job(home, sched, tmp, *flags):
    for d in kept(tmp):
        subprocess.run(["rm", "-r", str(d)], check=True)
    (tmp / "mixed").write_text("good 0\nbad 1\n")
    id = owen(home, sched.address, "start", "filesplit", *flags, "-l", "mixed", "test",
              FAILING, cwd=tmp).stdout.strip()
    owen(home, sched.address, "wait", id, cwd=tmp)
    records = read_records((tmp / "mixed.result").read_bytes())
    assert [(r.taskno, r.data) for r in records] == [(0, b"ok good 0\n")]
    return id


def test_without_k_or_a_no_attempt_leaves_its_working_directory(cluster):
    home, sched, tmp = cluster
    run_job(home, sched, tmp)
    assert kept_dirs(tmp) == []


def test_k_keeps_each_failed_attempts_directory_and_says_where(cluster):
    home, sched, tmp = cluster
    id = run_job(home, sched, tmp, "-k")
    # each of the 5 failures (and a copy of the task that failed as the last one did)
    dirs = kept_dirs(tmp)
    assert len(dirs) >= 5 and set(dirs) == {(b"bad 1\n", b"no: bad 1\n", True)}
    why = owen(home, sched.address, "why", id).stdout
    assert "failed for good after 5 failures" in why and "working directory is kept in" in why


def test_a_keeps_every_attempts_directory(cluster):
    home, sched, tmp = cluster
    run_job(home, sched, tmp, "-a")
    dirs = kept_dirs(tmp)
    assert dirs.count((b"bad 1\n", b"no: bad 1\n", True)) >= 5
    good = [k for k in dirs if k[0] == b"good 0\n"]   # it and any copy of it
    assert good and set(good) == {(b"good 0\n", b"", True)}
    good = [d for d in tmp.glob("w?/work/*") if (d / ".geryon-input").exists()
            and (d / ".geryon-input").read_bytes() == b"good 0\n" and (d / "result").exists()]
    assert (good[0] / "result").read_bytes() == b"ok good 0\n"


SCRIPT = r"""
verify() {
	out=$(cat)
	case "$out" in
	*bad*)
		if [ ! -e "$1/seen" ]; then : >"$1/seen"; echo "first bad output of $taskid" >&2; return 1; fi
	esac
}
finalise() {
	cat >"$1/$task.done"
	echo "$job $V" >>"$1/$task.done"
}
"""


def test_a_jobs_script_verifies_each_output_and_finalises_each_task_once(cluster):
    home, sched, tmp = cluster
    scripts = tmp / "state" / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "check").write_text(SCRIPT)
    out = tmp / "finalised"
    out.mkdir()
    id = owen(home, sched.address, "start", "job",
              f'(job (value V (for good bad also)) (task test "{{ echo $V }}") '
              f'(script check "{out}"))', cwd=tmp).stdout.strip()
    owen(home, sched.address, "wait", id, "-o", "script.result", cwd=tmp)
    records = read_records((tmp / "script.result").read_bytes())
    assert sorted((r.taskno, r.data) for r in records) == [
        (0, b"good\n"), (1, b"bad\n"), (2, b"also\n")]
    # "seen": verify refused the first bad output, and the task was run again
    wait_for(lambda: len(list(out.glob("*.done"))) == 3, 10, what="three finalise runs")
    assert (out / "1.done").read_text() == f"bad\n{id} bad\n"
    assert (out / "0.done").read_text() == f"good\n{id} good\n"
    assert sorted(p.name for p in out.iterdir()) == ["0.done", "1.done", "2.done", "seen"]


def test_verify_and_finalise_say_why_they_refused(tmp_path):
    from geryon.owen.jobscript import JobScripts
    (tmp_path / "s").write_text('verify() { grep -q "$1"; }\n'
                                'finalise() { echo "no room for $taskid" >&2; exit 4; }\n')
    (tmp_path / "slow").write_text("verify() { sleep 30; }\n")
    scripts = JobScripts(tmp_path, timeout=1)

    async def main():
        env = {"taskid": "u.1#0", "job": "1", "task": "0"}
        assert await scripts.verify(("s", "yes"), env, b"yes\n") is None
        assert await scripts.verify(("s", "yes"), env, b"no\n") == \
            "script s: verify said no (exit status 1)"
        assert await scripts.finalise(("s",), env, b"") == \
            "script s: finalise said no (exit status 4): no room for u.1#0"
        assert await scripts.finalise(("slow",), env, b"") is None   # not defined: fine
        assert await scripts.verify(("slow",), env, b"") == \
            "script slow: verify did not finish within 1 s and was killed"

    asyncio.run(main())
    with pytest.raises(Exception, match="no script gone is installed"):
        scripts.path("gone")


def test_a_job_naming_a_script_not_installed_is_refused_at_load(cluster):
    home, sched, tmp = cluster
    before = owen(home, sched.address, "jobs").stdout
    bad = owen(home, sched.address, "start", "job", "(job (task test true) (script nosuch))",
               check=False, cwd=tmp)
    assert bad.returncode == 1 and "no script nosuch is installed" in bad.stderr
    bad = owen(home, sched.address, "start", "job",
               "(job (task test true) (script ../../bin/sh))", check=False, cwd=tmp)
    assert bad.returncode == 1 and "without '/'" in bad.stderr
    assert owen(home, sched.address, "jobs").stdout == before


def test_a_runner_runs_tasks_in_turn_and_a_kill_ends_the_task_and_its_children(tmp_path):
    script = tmp_path / "t.job"
    script.write_text('runtask() { eval "$1" >result; }\n')

    async def main():
        runner = Runner(dict(os.environ), tmp_path, tmp_path / "w")
        runner.work.mkdir()
        for text, want in ((b"one\n", 0), (b"two\n", 0)):
            runner.put_input(text)
            line = command_line(runner.work, script, ["cat; echo \"$X\"; exit 0"],
                                {"X": "it's\na var"})
            assert await runner.run(line) == want
            assert (runner.work / "result").read_bytes() == text + b"it's\na var\n"
        assert await runner.run(command_line(runner.work, script, ["exit 7"], {})) == 7
        marker = f"sleep {os.getpid() % 97 + 300}.5"
        run = asyncio.ensure_future(runner.run(command_line(
            runner.work, script, [f"{marker}; echo late"], {})))
        await asyncio.sleep(0.5)
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
        await runner.kill()
        assert await run is None and not runner.alive
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1

    asyncio.run(main())
