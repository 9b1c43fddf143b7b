"""The scheduler, workers and controller commands as real processes on loopback."""

import hashlib
import signal
import subprocess

import pytest

from support import GERYON, Process, env_for, geryon, make_home, member_home, wait_for

from geryon.owen.records import read_records


def start_sched(home, state, extra=()):
    port_file = home / "sched.port"
    proc = Process(home, ["sched", "-a", "tcp!127.0.0.1!0", "--state", str(state),
                          "--port-file", str(port_file), *extra], port_file)
    proc.address = f"tcp!127.0.0.1!{proc.port}"
    proc.args[2] = proc.address  # a restart comes back on the same port
    return proc


def start_worker(home, sched, root, name, slots=2, install=("test", "exec"), **env):
    root.mkdir(parents=True, exist_ok=True)
    ready = root / "ready"
    args = ["worker", "--root", str(root), "--name", name, "--slots", str(slots),
            "--ready", str(ready)]
    for jobtype in install:
        args += ["--install", jobtype]
    return Process(home, args, ready, GERYON_SCHED=sched, **env)


def owen(home, sched, *args, check=True, timeout=60, cwd=None):
    result = subprocess.run([GERYON, "owen", *args], env=env_for(home, GERYON_SCHED=sched),
                            capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check:
        assert result.returncode == 0, f"geryon owen {args}: {result.stderr}"
    return result


def nodes_up(home, sched, names):
    def up():
        out = owen(home, sched, "nodes").stdout
        return all(f"{n} state idle" in out or f"{n} state busy" in out for n in names)
    wait_for(up, 20, 0.2, what=f"workers {names} to connect")


LINES = [f"line {i}: the quick brown fox {i * 7}" for i in range(12)]


def md5(text: bytes) -> bytes:
    return hashlib.md5(text).hexdigest().encode() + b"  -\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("owen")
    home = make_home(tmp / "home")
    sched = start_sched(home, tmp / "state")
    workers = [start_worker(home, sched.address, tmp / f"w{i}", f"w{i}") for i in range(2)]
    nodes_up(home, sched.address, ["w0", "w1"])
    yield home, sched, tmp
    for w in workers:
        w.stop()
    sched.stop()


def check_md5_records(data: bytes, lines: list[str]):
    records = read_records(data)
    assert sorted(r.taskno for r in records) == list(range(len(lines)))
    for r in records:
        assert r.data == md5(lines[r.taskno].encode() + b"\n"), r.taskno


def test_the_seeds_first_example_gives_each_lines_md5_exactly_once(cluster):
    home, sched, tmp = cluster
    (tmp / "mytasks").write_text("".join(line + "\n" for line in LINES))
    out = owen(home, sched.address, "start", "filesplit", "-l", "mytasks", "test", "md5sum",
               cwd=tmp)
    id = out.stdout.strip()
    assert id.isdigit()
    waited = owen(home, sched.address, "wait", id, cwd=tmp)
    assert waited.stdout.strip() == "mytasks.result"
    data = (tmp / "mytasks.result").read_bytes()
    check_md5_records(data, LINES)
    assert f"{id} complete {len(LINES)} {len(LINES)} admin-1 " in owen(
        home, sched.address, "jobs").stdout
    assert owen(home, sched.address, "results", id).stdout.encode() == data


def test_the_block_form_bare_results_and_another_result_file(cluster):
    home, sched, tmp = cluster
    (tmp / "few").write_text("".join(line + "\n" for line in LINES[:4]))
    id = owen(home, sched.address, "start", "filesplit", "-l", "-o", "other.result", "few",
              "test", "{ md5sum; sleep 1 }", cwd=tmp).stdout.strip()
    owen(home, sched.address, "wait", id, cwd=tmp)
    check_md5_records((tmp / "other.result").read_bytes(), LINES[:4])
    id = owen(home, sched.address, "start", "filesplit", "-ln", "few", "test", "md5sum",
              cwd=tmp).stdout.strip()
    owen(home, sched.address, "wait", id, cwd=tmp)
    bare = (tmp / "few.result").read_bytes()
    assert sorted(bare.splitlines(keepends=True)) == sorted(
        md5(line.encode() + b"\n") for line in LINES[:4])


def test_a_job_spec_with_stdin_gives_the_same_checksums(cluster):
    home, sched, tmp = cluster
    (tmp / "f").write_text("".join(line + "\n" for line in LINES[:5]))
    id = owen(home, sched.address, "start", "job",
              "(job (file (path f) (split lines) (kind stdin)) (task exec md5sum))",
              cwd=tmp).stdout.strip()
    owen(home, sched.address, "wait", id, "-o", "spec.result", cwd=tmp)
    check_md5_records((tmp / "spec.result").read_bytes(), LINES[:5])


def test_values_make_the_cross_product_with_the_right_values_in_each_task(cluster):
    home, sched, tmp = cluster
    id = owen(home, sched.address, "start", "job",
              '(job (value A (for x y)) (value B (range "3")) (task test "{ echo $A$B }"))',
              cwd=tmp).stdout.strip()
    owen(home, sched.address, "wait", id, "-o", "cross.result", cwd=tmp)
    got = sorted(r.data for r in read_records((tmp / "cross.result").read_bytes()))
    assert got == sorted(f"{a}{b}\n".encode() for a in "xy" for b in range(3))


def test_a_bundle_job_delivers_an_unpacked_directory(cluster):
    home, sched, tmp = cluster
    d = tmp / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha\n")
    (d / "sub" / "b.txt").write_text("beta\n")
    id = owen(home, sched.address, "start", "job",
              "(job (file (path tree) (kind bundle)) (task test \"{ cat tree/a.txt tree/sub/b.txt }\"))",
              cwd=tmp).stdout.strip()
    owen(home, sched.address, "wait", id, "-o", "bundle.result", cwd=tmp)
    assert [r.data for r in read_records((tmp / "bundle.result").read_bytes())] == \
        [b"alpha\nbeta\n"]


def test_malformed_messages_get_errors_and_the_scheduler_keeps_serving(cluster):
    home, sched, tmp = cluster
    before = owen(home, sched.address, "jobs").stdout
    bad = owen(home, sched.address, "start", "filesplit", "-l", check=False, cwd=tmp)
    assert bad.returncode == 1 and "give an input file" in bad.stderr
    (tmp / "empty").write_text("")
    bad = owen(home, sched.address, "start", "filesplit", "-l", "empty", "test", "md5sum",
               check=False, cwd=tmp)
    assert bad.returncode == 1 and "is empty" in bad.stderr and "removed" in bad.stderr
    bad = owen(home, sched.address, "start", "job", "(job (task", check=False, cwd=tmp)
    assert bad.returncode == 1 and "S-expression" in bad.stderr
    assert owen(home, sched.address, "jobs").stdout == before   # failed loads left nothing
    (tmp / "one").write_text("x\n")
    id = owen(home, sched.address, "job", "filesplit", "-l", "one", "test", "md5sum",
              cwd=tmp).stdout.strip()
    for message, error in [(["frob"], "unknown ctl message"), (["priority", "up"], "use high"),
                           (["group", "set"], "needs node names")]:
        bad = owen(home, sched.address, "ctl", id, *message, check=False)
        assert bad.returncode == 1 and error in bad.stderr, bad.stderr
    assert "stopped" in owen(home, sched.address, "why", id).stdout
    owen(home, sched.address, "ctl", id, "delete")
    assert f"\n{id} " not in "\n" + owen(home, sched.address, "jobs").stdout


def test_a_worker_without_test_job_is_never_given_a_test_task(tmp_path):
    home = make_home(tmp_path / "home")
    sched = start_sched(home, tmp_path / "state")
    plain = start_worker(home, sched.address, tmp_path / "plain", "plain", install=("exec",))
    nodes_up(home, sched.address, ["plain"])
    (tmp_path / "in").write_text("a\nb\n")
    id = owen(home, sched.address, "start", "filesplit", "-l", "in", "test", "md5sum",
              cwd=tmp_path).stdout.strip()
    wait_for(lambda: "no connected worker has test.job" in owen(home, sched.address, "why",
                                                                id).stdout, 10)
    assert "completed 0" in owen(home, sched.address, "nodes").stdout
    able = start_worker(home, sched.address, tmp_path / "able", "able", install=("test",))
    owen(home, sched.address, "wait", id, cwd=tmp_path)
    nodes = owen(home, sched.address, "nodes").stdout
    assert "plain state idle" in nodes and "completed 0" in nodes.split("\n")[1]
    plain.stop()
    able.stop()
    sched.stop()


def test_roles_a_worker_cannot_read_admin_and_only_its_owner_controls_a_job(tmp_path):
    home = make_home(tmp_path / "home")
    sched = start_sched(home, tmp_path / "state")
    wk = member_home(home, tmp_path / "wk", "wk1", "worker")
    bob = member_home(home, tmp_path / "bob", "bob", "submit")
    denied = owen(wk, sched.address, "jobs", check=False)
    assert denied.returncode == 1 and "permission denied" in denied.stderr
    denied = owen(wk, sched.address, "start", "job", "(job (task test true))", check=False)
    assert denied.returncode == 1 and "permission denied" in denied.stderr
    (tmp_path / "in").write_text("a\n")
    id = owen(home, sched.address, "job", "filesplit", "-l", "in", "test", "md5sum",
              cwd=tmp_path).stdout.strip()
    refused = owen(bob, sched.address, "ctl", id, "start", check=False)
    assert refused.returncode == 1 and "belongs to admin-1" in refused.stderr
    refused = owen(bob, sched.address, "ctl", "admin", "teardown", check=False)
    assert refused.returncode == 1 and "permission denied" in refused.stderr
    sched.stop()


def test_a_scheduler_killed_mid_job_and_restarted_completes_it_with_every_record_once(tmp_path):
    home = make_home(tmp_path / "home")
    state = tmp_path / "state"
    sched = start_sched(home, state)
    workers = [start_worker(home, sched.address, tmp_path / f"w{i}", f"w{i}") for i in range(2)]
    nodes_up(home, sched.address, ["w0", "w1"])
    lines = [f"row {i}" for i in range(30)]
    (tmp_path / "in").write_text("".join(line + "\n" for line in lines))
    id = owen(home, sched.address, "start", "filesplit", "-l", "in", "test",
              "{ md5sum; sleep 0.2 }", cwd=tmp_path).stdout.strip()
    wait_for(lambda: int(owen(home, sched.address, "jobs").stdout.split()[2]) >= 5, 30, 0.1,
             what="some tasks to complete")
    sched.kill(signal.SIGKILL)
    sched.start()
    owen(home, sched.address, "wait", id, cwd=tmp_path, timeout=90)
    check_md5_records((tmp_path / "in.result").read_bytes(), lines)
    for w in workers:
        w.stop()
    sched.stop()


def test_worker_and_sched_commands_say_what_is_wrong(tmp_path):
    home = make_home(tmp_path / "home")
    out = geryon(home, "worker", "--install", "nosuch", "--root", str(tmp_path / "r"))
    assert out.returncode == 1 and "no task script nosuch.job" in out.stderr
    out = owen(home, "", "jobs", check=False)
    assert out.returncode == 1 and "no scheduler address" in out.stderr

