"""Owen across hosts: a scheduler and four workers in network name spaces, with faults."""

import signal
import subprocess
import time

import pytest

from netns import Network, ip
from support import GERYON, Process, env_for, make_home, wait_for

from geryon.owen.records import read_records

pytestmark = pytest.mark.netns
SCHED_HOST = 4


@pytest.fixture(scope="module")
def net():
    network = Network(5)
    yield network
    network.close()


class Grid:
    def __init__(self, net, tmp):
        self.net, self.tmp = net, tmp
        self.home = make_home(tmp / "home", hosts=tuple(net.addresses))
        self.address = f"tcp!{net.addresses[SCHED_HOST]}!6678"
        self.sched = self._sched()
        self.workers = {}

    def _sched(self):
        port_file = self.tmp / "sched.port"
        return Process(self.home, ["sched", "-a", self.address, "--state",
                                   str(self.tmp / "state"), "--port-file", str(port_file)],
                       port_file, prefix=self.net.prefix(SCHED_HOST))

    def worker(self, host, script=None, slots=2, verbose=False):
        root = self.tmp / f"w{host}"
        root.mkdir(exist_ok=True)
        if script is None:
            args = ["--install", "test"]
        else:
            (root / "test.job").write_text(script)
            args = []
        ready = root / "ready"
        self.workers[host] = Process(
            self.home, ["worker", "--root", str(root), "--name", f"w{host}", "--slots",
                        str(slots), *args, "--ready", str(ready), *(["-v"] if verbose else [])],
            ready,
            prefix=self.net.prefix(host), GERYON_SCHED=self.address)
        return self.workers[host]

    def owen(self, *args, check=True, timeout=60):
        result = subprocess.run([*self.net.prefix(SCHED_HOST), GERYON, "owen", *args],
                                env=env_for(self.home, GERYON_SCHED=self.address),
                                capture_output=True, text=True, timeout=timeout, cwd=self.tmp)
        if check:
            assert result.returncode == 0, f"geryon owen {args}: {result.stderr}"
        return result

    def node_line(self, name):
        for line in self.owen("nodes").stdout.splitlines():
            if line.startswith(name + " "):
                return line
        return ""

    def up(self, *names):
        wait_for(lambda: all(" state idle " in self.node_line(n) or " state busy " in
                             self.node_line(n) for n in names), 20, 0.2,
                 what=f"workers {names} to connect")

    def start(self, lines, *task):
        (self.tmp / "in").write_text("".join(line + "\n" for line in lines))
        return self.owen("start", "filesplit", "-l", "in", "test", *task).stdout.strip()

    def results(self, id, lines):
        self.owen("wait", id, timeout=120)
        records = read_records((self.tmp / "in.result").read_bytes())
        assert sorted(r.taskno for r in records) == list(range(len(lines)))
        return records

    def close(self):
        for w in self.workers.values():
            w.stop()
        self.sched.stop()


@pytest.fixture
def grid(net, tmp_path):
    g = Grid(net, tmp_path)
    yield g
    g.close()


def monitor_of(grid, id):
    return grid.owen("monitor", id).stdout.splitlines()[-1]


def test_a_worker_killed_mid_task_its_task_completes_elsewhere(grid):
    for host in range(4):
        grid.worker(host)
    grid.up("w0", "w1", "w2", "w3")
    lines = [f"kill {i}" for i in range(16)]
    id = grid.start(lines, "{ md5sum; sleep 1 }")
    wait_for(lambda: "tasks " in grid.node_line("w0") and
             "tasks ''" not in grid.node_line("w0"), 20, 0.1, what="w0 to run a task")
    grid.workers[0].kill(signal.SIGKILL)
    grid.results(id, lines)
    assert "disconnected 0" not in monitor_of(grid, id)


def test_a_scheduler_killed_mid_job_restarts_and_completes_it_every_record_once(grid):
    for host in range(4):
        grid.worker(host)
    grid.up("w0", "w1", "w2", "w3")
    lines = [f"row {i}" for i in range(40)]
    id = grid.start(lines, "{ md5sum; sleep 0.3 }")
    wait_for(lambda: int(grid.owen("jobs").stdout.split()[2]) >= 8, 30, 0.1,
             what="some tasks to complete")
    grid.sched.kill(signal.SIGKILL)
    grid.sched = grid._sched()
    records = grid.results(id, lines)
    assert len(records) == len(lines)


def test_a_cut_link_mid_task_its_result_comes_back_through_reconnect_once(grid, net):
    grid.worker(2, verbose=True)
    grid.up("w2")
    lines = ["only task"]
    (grid.tmp / "in").write_text("only task\n")
    id = grid.owen("job", "filesplit", "-l", "in", "test", "{ sleep 7; md5sum }").stdout.strip()
    grid.owen("ctl", id, "group", "set", "w2")   # only w2 may run it: no copy elsewhere
    grid.owen("ctl", id, "start")
    wait_for(lambda: "tasks ''" not in grid.node_line("w2"), 10, 0.1, what="w2 to start")
    link = f"v{2}"
    ip("-n", net.switch, "link", "set", link, "down")
    try:
        wait_for(lambda: " state disconnected " in grid.node_line("w2"), 15, 0.3,
                 what="the scheduler to notice w2 is gone")
        time.sleep(5)                          # the task finishes while the link is down
    finally:
        ip("-n", net.switch, "link", "set", link, "up")
    records = grid.results(id, lines)
    assert len(records) == 1
    status = monitor_of(grid, id)
    assert "disconnected 1" in status and "duplicate 0" in status
    assert "handed in" in grid.workers[2].output() and ": done" in grid.workers[2].output()


def test_a_worker_whose_tasks_always_fail_is_blacklisted_after_its_sixth_failure(grid):
    grid.worker(0, script="runtask() { echo broken >&2; exit 3; }\n", slots=1)
    grid.up("w0")
    lines = [f"bl {i}" for i in range(30)]
    id = grid.start(lines, "{ md5sum; sleep 0.2 }")
    wait_for(lambda: " state blacklisted " in grid.node_line("w0"), 30, 0.2,
             what="w0 to be blacklisted")
    assert " failed 6 " in grid.node_line("w0")
    for host in (1, 2, 3):
        grid.worker(host)
    for r in grid.results(id, lines):
        assert r.data.endswith(b"  -\n")
    line = grid.node_line("w0")
    assert " state blacklisted " in line and " failed 6 " in line
    assert "on w0: runtask exited with status 3" in grid.owen("why", id).stdout
