"""geryon mapreduce on a loopback cluster of three cpu nodes: results equal to the local
pipeline (awkward bytes too), failures, stragglers, timeouts, the driver killed and
resumed, the registry restarted mid-job, jobs listed, logged and cleaned up after.
(Across hosts, with nodes killed: test_mapreduce_netns.py.)"""

import json
import os
import random
import signal
import subprocess
import time

import pytest

from support import (GERYON, cpu_options, env_for, make_home, start_node, start_registry,
                     wait_for)

NODES = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("mapreduce")
    home = make_home(base / "admin")
    registry = start_registry(home)
    env = env_for(home, GERYON_REGISTRY=registry.address, GERYON_NDB=base / "cluster")
    nodes = [start_node(home, registry.address, base / f"chunks{i}", f"node{i}", 10, "160K",
                        extra=cpu_options(base / f"state{i}", "24M")) for i in range(NODES)]
    corpus = text_corpus(base / "corpus", files=48, words=2500)
    load(env, "mbox", corpus)
    c = {"home": home, "env": env, "corpus": corpus, "nodes": nodes, "base": base,
         "registry": registry}
    yield c
    for node in c["nodes"]:
        node.stop()
    c["registry"].stop()


def text_corpus(path, files, words, seed=7):
    """Mail-like files of words from a large vocabulary (so that they compress no better
    than text): path/inbox/N/mK and path/sent/N/mK."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
                  for _ in range(20000)]
    for i in range(files):
        target = path / ("inbox" if i % 2 else "sent") / f"{i // 10}" / f"m{i}"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = " ".join(rng.choice(vocabulary) + rng.choice(("", "", ",", ".", "!"))
                        for _ in range(words))
        target.write_text(text + "\n")
    return path


def load(env, app, *sources):
    done = subprocess.run([GERYON, "load", "--app", app, "--replicas", "0", *map(str, sources)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refreshed = subprocess.run([GERYON, "refresh"], env=env, capture_output=True, text=True,
                               timeout=60)
    assert refreshed.returncode == 0, refreshed.stderr
    return [line.split()[0] for line in done.stdout.splitlines() if line.startswith("d")]


def geryon(cluster, *args, timeout=180, **kw):
    return subprocess.run([GERYON, *args], env=cluster["env"], capture_output=True,
                          timeout=timeout, **kw)


def start_driver(cluster, *args, quiet=False):
    """`geryon mapreduce ARGS` as a process of its own, to watch, kill or wait on; its
    output piped (or, quiet, thrown away)."""
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen([GERYON, "mapreduce", *args], env=cluster["env"], stdout=out,
                            stderr=out)


def mapreduce(cluster, *args, timeout=180):
    done = geryon(cluster, "mapreduce", *args, timeout=timeout)
    return done, done.stdout.decode().split("\n")[0] if done.returncode == 0 else ""


def result(cluster, job) -> bytes:
    done = geryon(cluster, "jobs", "cat", job)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sorted_lines(data: bytes) -> list[bytes]:
    return sorted(data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"))


def local_pipeline(files, map_cmd, reduce_cmd) -> bytes:
    """cat files | map | LC_ALL=C sort | reduce, as one local shell pipeline."""
    paths = " ".join(f"'{p}'" for p in files)
    done = subprocess.run(f"cat {paths} | {map_cmd} | LC_ALL=C sort | {reduce_cmd}",
                          shell=True, capture_output=True, timeout=120,
                          env={**os.environ, "PATH": f"{os.path.dirname(GERYON)}:"
                                                     f"{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def disks_of(cluster, app):
    return sorted(line.split()[0] for line in subprocess.run(
        [GERYON, "regquery", "-n", "automount", "1"], env=cluster["env"], text=True,
        capture_output=True, check=True).stdout.splitlines()
        if line.split()[0].endswith(f".{app}"))


def events(cluster, job):
    path = cluster["home"] / "jobs" / job / "events"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def corpus_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_word_count_equals_the_local_pipeline_and_cleans_up(cluster):
    disks = disks_of(cluster, "mbox")
    assert len(disks) >= 3, disks
    done, job = mapreduce(cluster, "-R", "4", "{idx /n/d*.mbox/*/*/*}", "agg", *disks)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().split("\n")
    assert lines[0] == job and lines[1].split() and all(d.endswith(".cpu")
                                                        for d in lines[1].split())
    want = local_pipeline(corpus_files(cluster["corpus"]), "idx", "agg")
    got = result(cluster, job)
    assert sorted_lines(got) == sorted_lines(want)
    keys = [line.split()[0] for line in got.splitlines()]
    assert len(keys) == len(set(keys))
    # counters from the blocks' reporter lines are summed and shown
    assert b"geryon: map input bytes: " in done.stderr
    # the intermediate files are gone from every cpu disk; the parts are there
    listing = geryon(cluster, "rcpu", "{ls -R /n}", *sorted(set(lines[1].split())))
    text = listing.stdout.decode()
    assert "map" not in text.split() and f"part0.a" in text, text
    started = [e for e in events(cluster, job) if e["ev"] == "start"]
    assert {e["task"] for e in started} == {f"m{k}" for k in range(len(disks))} | \
        {f"r{r}" for r in range(4)}


# ---- awkward bytes ---------------------------------------------------------------------

AWKWARD = {
    "bad-utf8": b"caf\xc3\xa9 \xff\xfe bytes\t\x80\x81 value\n\xed\xa0\x80 surrogate\n",
    "long-line": b"".join(b"w%d\t" % (i % 977) for i in range(28_000)) + b"\n",
    "empty": b"",
    "also-empty": b"",
    "tabs": b"key with spaces\tvalue one\nkey with spaces\tvalue one\n\tleading tab\n"
            b"a\tb\tc\ntrailing tab\t\n  \t  \n\n",
    "crlf": b"dos line\r\nother\r\n",
    "nul": b"zero\x00byte\tin key\nzero\x00byte\tin key\n",
    "no-newline": b"the last line has no newline",
    "dir/deeper/more": b"nested file\nkey with spaces\tvalue one\n",
}


def awkward_corpus(path):
    for i in range(3):
        for name, data in AWKWARD.items():
            target = path / f"part{i}" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data if name == "long-line" else data * (i + 1))
        # random bytes, every value, in lines of random length: they fill the disks too
        noise = random.Random(i).randbytes(70000)
        (path / f"part{i}" / "noise").write_bytes(noise.replace(b"\n", b"\n\n"))
    return path


def name_empty_disk(cluster, app) -> str:
    """Name an empty chunk as the next disk of an application: a disk with no files."""
    ndb = cluster["base"] / "cluster"
    text = ndb.read_text()
    chunks = subprocess.run([GERYON, "regquery", "resource", "kfs"], env=cluster["env"],
                            text=True, capture_output=True, check=True).stdout.splitlines()
    for line in chunks:
        words = line.split()
        attrs = dict(zip(words[1::2], words[2::2]))
        master = f"{attrs.get('host')}!{attrs.get('id')}"
        if attrs.get("cpudisk") != "1" and f"master={master}" not in text:
            number = len(disks_of(cluster, app))
            name = f"d{number}.{app}"
            ndb.write_text(text + f"\nname={name} kfs\n\tmaster={master}\n")
            subprocess.run([GERYON, "refresh"], env=cluster["env"], check=True,
                           capture_output=True, timeout=60)
            return name
    raise AssertionError("no free chunk to name")


# The map reads every file of its disk, each ending in a newline, and drops lines with
# no key (empty or only blanks), which intermediate would leave out of every partition
# (grep's status 1, no line selected, is what an empty disk gives).
LINES_MAP = ("find {root} -type f -print0 | LC_ALL=C sort -z | "
             "LC_ALL=C xargs -0 -r sed -s -e '$a\\' | "
             "{{ LC_ALL=C grep -a -v -x '[[:space:]]*' || [ $? = 1 ]; }}")
WORDS_MAP = "find {root} -type f -print0 | xargs -0 -r idx"


@pytest.fixture(scope="module")
def awkward(cluster):
    corpus = awkward_corpus(cluster["base"] / "awkward")
    load(cluster["env"], "awk", corpus)
    empty = name_empty_disk(cluster, "awk")
    return corpus, disks_of(cluster, "awk"), empty


def local_map_pipeline(map_cmd, reduce_cmd) -> bytes:
    done = subprocess.run(f"{map_cmd} | LC_ALL=C sort | {reduce_cmd}", shell=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "PATH": f"{os.path.dirname(GERYON)}:"
                                                     f"{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("map_cmd, reduce_cmd, options", [
    (LINES_MAP, "uniq -c", ["-R", "3"]),
    (WORDS_MAP, "agg", ["-R", "2", "--combiner", "agg"]),
    (WORDS_MAP, "agg", ["-R", "5", "--hash", "65599"]),
])
def test_awkward_bytes_give_what_the_local_pipeline_gives(cluster, awkward, map_cmd,
                                                          reduce_cmd, options):
    corpus, disks, empty = awkward
    assert empty in disks and len(disks) >= 3, disks
    done, job = mapreduce(cluster, *options, map_cmd.format(root="/n/d*.awk"), reduce_cmd,
                          *disks)
    assert done.returncode == 0, done.stderr
    want = local_map_pipeline(map_cmd.format(root=f"'{corpus}'"), reduce_cmd)
    got = result(cluster, job)
    assert sorted_lines(got) == sorted_lines(want)
    assert b"\xff\xfe" in got or "idx" in map_cmd
    assert len(got) > 1000


# ---- failures --------------------------------------------------------------------------

def test_a_map_that_always_fails_fails_the_job_and_leaves_nothing(cluster):
    disks = disks_of(cluster, "mbox")
    done, _ = mapreduce(cluster, "--attempts", "2", "--name", "always-fails",
                        "{echo cannot read the mail >&2; exit 3}", "agg", *disks[:2])
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "cannot read the mail" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mapreduce: job always-fails failed: map ") and \
        "failed 2 times" in last and "exit status 3" in last and " on node" in last, last
    listed = geryon(cluster, "jobs").stdout.decode()
    assert any(line.split()[:2] == ["always-fails", "failed"] for line in listed.splitlines())
    assert geryon(cluster, "jobs", "cat", "always-fails").returncode == 1
    log = geryon(cluster, "jobs", "log", "always-fails").stdout.decode()
    assert log.count("exit status 3") >= 2
    # nothing of the job is on any cpu disk, and the registry keeps its outcome
    cpus = [d for d in subprocess.run([GERYON, "regquery", "-n", "automount", "1"],
                                      env=cluster["env"], text=True, capture_output=True,
                                      check=True).stdout.split() if d.endswith(".cpu")]
    seen = geryon(cluster, "rcpu", "{ls -R /n}", *cpus).stdout.decode()
    assert "always-fails" not in seen
    entry = subprocess.run([GERYON, "regquery", "job", "always-fails"], env=cluster["env"],
                           text=True, capture_output=True, check=True).stdout
    assert "state failed" in entry and "persist 1" in entry


def test_a_straggler_gets_a_backup_attempt_and_the_first_to_finish_wins(cluster):
    disks = disks_of(cluster, "mbox")
    slow = "{case $GERYON_CPU in node0) sleep 40;; esac; idx /n/d*.mbox/*/*/*}"
    started = time.monotonic()
    done, job = mapreduce(cluster, "-R", "2", slow, "agg", *disks)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    log = geryon(cluster, "jobs", "log", job).stdout.decode()
    assert "(backup)" in log and "another attempt finished first" in log
    want = local_pipeline(corpus_files(cluster["corpus"]), "idx", "agg")
    assert sorted_lines(result(cluster, job)) == sorted_lines(want)


def test_an_attempt_past_the_timeout_runs_again_elsewhere(cluster):
    disks = disks_of(cluster, "mbox")
    slow = "{case $GERYON_CPU in node1) sleep 40;; esac; idx /n/d*.mbox/*/*/*}"
    done, job = mapreduce(cluster, "--timeout", "3", "--no-backups", "-R", "2", slow, "agg",
                          *disks)
    assert done.returncode == 0, done.stderr
    log = geryon(cluster, "jobs", "log", job).stdout.decode()
    assert "timed out after 3 s" in log
    winners = [e for e in events(cluster, job) if e["ev"] == "start"]
    assert any(e["host"] == "node1" for e in winners)
    want = local_pipeline(corpus_files(cluster["corpus"]), "idx", "agg")
    assert sorted_lines(result(cluster, job)) == sorted_lines(want)


def test_a_running_tasks_status_line_is_seen_while_it_runs(cluster):
    """reporter:status: lines are read as the block writes them: the job's registry
    entry shows the last while the map still runs."""
    disks = disks_of(cluster, "mbox")
    block = "{echo 'reporter:status:reading the mail' >&2; sleep 4; idx /n/d*.mbox/*/*/*}"
    driver = start_driver(cluster, "--name", "status-live", "-R", "1", block, "agg", disks[0])
    try:
        def shown():
            entry = subprocess.run([GERYON, "regquery", "job", "status-live"], text=True,
                                   env=cluster["env"], capture_output=True).stdout
            return "'reading the mail'" in entry and "phase map" in entry
        wait_for(shown, 30, 0.2, what="the status line in the job's entry")
        assert driver.poll() is None  # seen while the map runs, not at its end
    finally:
        out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, err


# ---- the driver and the registry going away ----------------------------------------------

def wait_event(cluster, job, predicate, timeout=60):
    def found():
        try:
            return any(predicate(e) for e in events(cluster, job))
        except FileNotFoundError:
            return False
    wait_for(found, timeout, 0.1, what=f"an event of job {job}")


def test_the_driver_killed_mid_job_is_resumed_from_its_committed_tasks(cluster):
    disks = disks_of(cluster, "mbox")
    slow = "{sleep 1; idx /n/d*.mbox/*/*/*}"
    driver = start_driver(cluster, "--slots", "1", "--name", "resumed", "-R", "3", slow,
                          "agg", *disks, quiet=True)
    try:
        wait_event(cluster, "resumed", lambda e: e["ev"] == "done")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    before = events(cluster, "resumed")
    committed = {e["task"] for e in before if e["ev"] == "done"}
    listed = geryon(cluster, "jobs").stdout.decode()
    assert any(line.split()[:2] == ["resumed", "stopped"] for line in listed.splitlines())
    done = geryon(cluster, "mapreduce", "--resume", "resumed")
    assert done.returncode == 0, done.stderr
    after = events(cluster, "resumed")[len(before):]
    assert not committed & {e["task"] for e in after if e["ev"] == "start"}
    want = local_pipeline(corpus_files(cluster["corpus"]), "idx", "agg")
    assert sorted_lines(result(cluster, "resumed")) == sorted_lines(want)
    assert "resumed job resumed" in geryon(cluster, "jobs", "log", "resumed").stdout.decode()


def test_a_registry_restarted_mid_job_does_not_stop_it(cluster):
    disks = disks_of(cluster, "mbox")
    slow = "{sleep 1; idx /n/d*.mbox/*/*/*}"
    driver = start_driver(cluster, "--slots", "1", "--name", "reg-restart", "-R", "3", slow,
                          "agg", *disks)
    try:
        wait_event(cluster, "reg-restart", lambda e: e["ev"] == "start")
        cluster["registry"].kill(signal.SIGKILL)
        time.sleep(1)
        cluster["registry"].start()
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
    assert driver.returncode == 0, err
    assert out.decode().split("\n")[0] == "reg-restart"
    want = local_pipeline(corpus_files(cluster["corpus"]), "idx", "agg")
    assert sorted_lines(result(cluster, "reg-restart")) == sorted_lines(want)


def test_twelve_disks_on_three_nodes_every_cpu_runs_maps(cluster):
    rng = random.Random(12)
    many = cluster["base"] / "many"
    many.mkdir()
    for i in range(12):  # one file fills most of a disk: each lands on a disk of its own
        words = b" ".join(bytes(rng.choice(b"abcdefghij") for _ in range(6))
                          for _ in range(15000))
        (many / f"f{i:02}").write_bytes(words + b"\n" + os.urandom(45000) + b"\n")
    load(cluster["env"], "many", many)
    disks = disks_of(cluster, "many")
    assert len(disks) == 12, disks
    done, job = mapreduce(cluster, "idx /n/d*.many/*", "agg", *disks)
    assert done.returncode == 0, done.stderr
    hosts = {e["host"] for e in events(cluster, job) if e["ev"] == "start"
             and e["task"].startswith("m")}
    assert hosts == {f"node{i}" for i in range(NODES)}
    want = local_pipeline(corpus_files(many), "idx", "agg")
    assert sorted_lines(result(cluster, job)) == sorted_lines(want)


def test_jobs_rm_removes_a_jobs_files_everywhere_and_refuses_a_running_one(cluster):
    disks = disks_of(cluster, "mbox")
    done, job = mapreduce(cluster, "--name", "to-remove", "-R", "2",
                          "{idx /n/d*.mbox/*/*/*}", "agg", *disks[:2])
    assert done.returncode == 0, done.stderr
    cpus = sorted({e["disk"] for e in events(cluster, job) if e.get("disk")})

    def on_cpu_disks():
        return "".join(geryon(cluster, "ls", disk).stdout.decode() for disk in cpus)
    assert "to-remove" in on_cpu_disks()
    removed = geryon(cluster, "jobs", "rm", job)
    assert removed.returncode == 0 and removed.stdout.decode() == f"removed {job}\n", \
        removed.stderr
    assert "to-remove" not in on_cpu_disks()
    assert "to-remove" not in geryon(cluster, "jobs").stdout.decode()
    entry = geryon(cluster, "regquery", "job", "to-remove").stdout.decode()
    assert entry == ""
    gone = geryon(cluster, "jobs", "rm", job)
    assert gone.returncode == 1 and b"no job to-remove here" in gone.stderr

    slow = "{sleep 30; idx /n/d*.mbox/*/*/*}"
    driver = start_driver(cluster, "--name", "busy", slow, "agg", disks[0], quiet=True)
    try:
        wait_event(cluster, "busy", lambda e: e["ev"] == "start")
        refused = geryon(cluster, "jobs", "rm", "busy")
        assert refused.returncode == 1 and b"job busy is running" in refused.stderr
    finally:
        driver.send_signal(signal.SIGINT)
        driver.wait(30)
    assert geryon(cluster, "jobs", "rm", "busy").returncode == 0  # stopped: it may go


def test_a_result_outlives_the_node_that_made_a_part(cluster):
    """Each part is copied to a second node's cpu disk as the job ends, so `jobs cat`
    still gives the whole result after the node that made one is SIGKILLed."""
    disks = disks_of(cluster, "mbox")
    done, job = mapreduce(cluster, "-R", "3", "{idx /n/d*.mbox/*/*/*}", "agg", *disks)
    assert done.returncode == 0, done.stderr
    before = result(cluster, job)
    happened = events(cluster, job)
    copies = {e["task"]: e for e in happened if e["ev"] == "copy"}
    winners = {e["task"]: e for e in happened if e["ev"] == "start" and
               e["task"].startswith("r")}  # one attempt each: nothing failed here
    assert set(copies) == {"r0", "r1", "r2"}
    assert all(copies[t]["host"] != winners[t]["host"] for t in copies)
    victim = winners["r0"]["host"]
    node = cluster["nodes"][int(victim[4:])]
    node.kill(signal.SIGKILL)
    try:
        assert sorted_lines(result(cluster, job)) == sorted_lines(before)
    finally:
        node.start()
