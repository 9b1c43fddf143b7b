"""Owen's scheduling rules, stepped one call at a time with a fake clock (no network)."""

from dataclasses import dataclass

import pytest

from geryon.errors import GeryonError, PermissionDenied
from geryon.owen.core import OwenError, Rules, Scheduler, Who
from geryon.owen.store import MemoryStorage, SQLiteStorage


@dataclass(frozen=True)
class Spec:
    n: int
    jobtype: str
    args: tuple = ()
    input: bytes = b""
    files: tuple = ()
    env: tuple = ()


class FakeGenerator:
    """`fake COUNT [TYPE] [LIMIT]`: COUNT tasks of TYPE; an empty output is refused."""

    name = "fake"
    result_name = "result"
    description = "fake job"

    def __init__(self, argv):
        if not argv or not argv[0].isdigit():
            raise GeryonError("fake: give a task count")
        count = int(argv[0])
        self.jobtype = argv[1] if len(argv) > 1 else "test"
        self.failure_limit = int(argv[2]) if len(argv) > 2 else 5
        self.specs = [Spec(i, self.jobtype, ("md5sum",), b"line %d\n" % i) for i in range(count)]

    def tasks(self):
        return list(self.specs)

    def verify(self, n, output):
        return None if output else "the task gave no output"

    def record(self, n, output):
        return b"data %d %d\n" % (len(output), n) + output


def fake_load(argv, data_dir):
    if not argv or argv[0] != "fake":
        raise GeryonError(f"unknown generator {argv[:1]}")
    return FakeGenerator(argv[1:])


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


ALICE, BOB, ROOT = Who("alice"), Who("bob"), Who("root", admin=True)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sched(tmp_path, clock):
    return Scheduler(MemoryStorage(tmp_path), fake_load, Rules(), clock=clock,
                     uniq=lambda: "u")


def node(s, name, types=("test",)):
    n = s.connect(name, name)
    s.set_attrs(n, "".join(f"jobtype{i} {t}\n" for i, t in enumerate(types)))
    return n


def job(s, *argv, who=ALICE, start=True):
    j = s.clone(who)
    s.ctl(j, "load " + " ".join(argv), who)
    if start:
        s.ctl(j, "start", who)
    return j


def run(s, waiter, output=b"ok\n", ok=True, wid=None):
    """Start the waiter's attempt and hand in its result."""
    a = waiter.attempt
    s.started(a, wid or f"w{a.serial}")
    return s.result(a, ok, output)


def given(waiter):
    a = waiter.attempt
    return None if a is None else (a.job.id, a.task.n)


def test_waiting_workers_are_served_in_arrival_order(sched):
    a, b, c = node(sched, "a"), node(sched, "b"), node(sched, "c")
    wc, wa, wb = sched.request(c), sched.request(a), sched.request(b)
    job(sched, "fake", "2")
    assert given(wc) == (1, 0) and given(wa) == (1, 1)
    assert given(wb) == (1, 0)  # no new task is left: b runs a copy of the oldest
    assert given(sched.request(a)) is None and [w.node.name for w in sched.waiters] == ["a"]


def test_jobs_are_tried_in_queue_order_and_priority_moves_them(sched):
    n = node(sched, "a")
    j1, j2, j3 = job(sched, "fake", "5"), job(sched, "fake", "5"), job(sched, "fake", "5")
    assert given(sched.request(n))[0] == 1
    sched.ctl(j3, "priority high", ALICE)
    assert given(sched.request(n))[0] == 3
    sched.ctl(j3, "priority low", ALICE)
    assert given(sched.request(n))[0] == 1
    sched.ctl(j2, "priority 7", ALICE)
    assert given(sched.request(n))[0] == 2
    assert (j1.priority, j2.priority) == (0, 7)


def test_failed_tasks_are_retried_before_new_ones_and_never_on_the_node_that_just_did_them(sched):
    a, b = node(sched, "a"), node(sched, "b")
    job(sched, "fake", "4")
    wa = sched.request(a)
    assert given(wa) == (1, 0)
    assert run(sched, wa, b"", ok=True) == "failed"  # empty output: refused by verify
    again = sched.request(a)
    assert given(again) == (1, 1)      # not task 0: a did it last
    wb = sched.request(b)
    assert given(wb) == (1, 0)         # the failed task before new task 2
    assert wb.attempt.job.tasks[0].failures == 1


def test_a_task_every_able_node_did_last_goes_back_to_one_of_them(sched):
    a, b = node(sched, "a"), node(sched, "b")
    node(sched, "c", types=("exec",))          # cannot run it: does not count
    job(sched, "fake", "2")
    wa, wb = sched.request(a), sched.request(b)
    assert (given(wa), given(wb)) == ((1, 0), (1, 1))
    assert run(sched, wb) == "done"
    assert run(sched, wa, b"") == "failed"
    wb = sched.request(b)
    assert given(wb) == (1, 0)                 # b did task 1 last, not task 0
    assert run(sched, wb, b"") == "failed"
    again = sched.request(a)
    assert given(again) == (1, 0)              # both did it last: not waiting for ever


def test_a_node_lacking_a_task_type_is_never_offered_it(sched):
    plain = node(sched, "plain", types=("exec",))
    job(sched, "fake", "3", "test")
    w = sched.request(plain)
    assert given(w) is None
    assert "no connected worker has test.job" in sched.why(sched.jobs[1])
    able = node(sched, "able")
    assert given(sched.request(able)) == (1, 0)
    assert given(w) is None


def test_when_no_new_tasks_are_left_running_ones_are_copied_and_the_first_good_result_wins(
        sched, tmp_path):
    a, b, c = node(sched, "a"), node(sched, "b"), node(sched, "c")
    j = job(sched, "fake", "1")
    wa = sched.request(a)
    sched.started(wa.attempt, "x1")
    wb = sched.request(b)
    assert given(wb) == (1, 0)         # a speculative copy on another node
    assert given(sched.request(c)) is None  # at most Rules.copies attempts at once
    assert run(sched, wb, b"from b\n") == "done"
    assert a.stops == __import__("collections").deque(["x1"])  # the loser is told to stop
    assert sched.result(wa.attempt, True, b"from a\n") == "duplicate"
    assert j.state == "complete"
    assert j.counts["duplicate"] == 1
    assert sched.storage.result(j.id) == b"data 7 0\nfrom b\n"


def test_a_task_fails_for_good_at_the_generators_limit_and_the_job_completes(sched):
    nodes = [node(sched, f"n{i}") for i in range(4)]
    j = job(sched, "fake", "1", "test", "3")
    for i in range(3):
        w = sched.request(nodes[i % 4])
        assert given(w) == (1, 0)
        run(sched, w, ok=False)
    assert j.tasks[0].state == "failed" and j.state == "complete"
    assert "failed for good after 3 failures" in sched.why(j)
    assert given(sched.request(nodes[3])) is None


def test_more_than_five_failures_in_a_row_blacklist_a_node_until_its_parole(sched, clock):
    bad = node(sched, "bad")
    j = job(sched, "fake", "20", "test", "100")
    for i in range(6):
        w = sched.request(bad)
        assert given(w) is not None, f"failure {i}"
        run(sched, w, ok=False)
    assert bad.state == "blacklisted" and bad.in_row == 6
    w = sched.request(bad)
    assert given(w) is None
    clock.now += 599
    sched.tick()
    assert given(w) is None
    clock.now += 2
    sched.tick()
    assert bad.state != "blacklisted" and given(w) is not None
    assert j.state == "running"


def test_a_success_resets_the_count_and_a_stopped_attempt_does_not_count(sched):
    n = node(sched, "n")
    j = job(sched, "fake", "20", "test", "100")
    for _ in range(5):
        run(sched, sched.request(n), ok=False)
    run(sched, sched.request(n))
    assert n.in_row == 0
    for _ in range(5):
        run(sched, sched.request(n), ok=False)
    w = sched.request(n)
    sched.started(w.attempt, "s1")
    sched.ctl(j, "teardown", ALICE)
    assert list(n.stops) == ["s1"]
    sched.close(w.attempt)                 # the worker killed it as told
    assert n.in_row == 5 and n.state != "blacklisted"
    assert w.attempt.state == "stopped"


def test_blacklisting_is_configurable_and_unblacklist_lets_a_node_back(tmp_path, clock):
    s = Scheduler(MemoryStorage(tmp_path), fake_load, Rules(blacklist_after=1, parole=5),
                  clock=clock)
    n = node(s, "n")
    job(s, "fake", "9", "test", "100")
    run(s, s.request(n), ok=False)
    assert n.state != "blacklisted"
    run(s, s.request(n), ok=False)
    assert n.state == "blacklisted"
    s.admin_ctl("unblacklist n")
    assert n.state == "idle"


def test_job_and_global_groups_decide_which_nodes_may_run_a_job(sched):
    a, b = node(sched, "a"), node(sched, "b")
    j = job(sched, "fake", "4")
    sched.ctl(j, "group set b", ALICE)
    wa = sched.request(a)
    assert given(wa) is None
    assert given(sched.request(b)) == (1, 0)
    sched.ctl(j, "group add a", ALICE)
    assert given(wa) == (1, 1)
    sched.admin_ctl("group set b")
    assert sched.group_text() == "b\n"
    assert given(sched.request(a)) is None
    sched.admin_ctl("group all")
    sched.ctl(j, "group none", ALICE)
    assert given(sched.request(b)) is None
    assert "in the job's group (none)" in sched.why(j)
    with pytest.raises(OwenError, match="group set needs node names"):
        sched.ctl(j, "group set", ALICE)


def test_stop_leaves_the_queue_while_running_tasks_go_on_and_start_resumes(sched):
    n = node(sched, "n")
    j = job(sched, "fake", "3")
    w = sched.request(n)
    sched.started(w.attempt, "r1")
    sched.ctl(j, "stop", ALICE)
    assert given(sched.request(n)) is None
    assert sched.result(w.attempt, True, b"x") == "done"
    idle = sched.waiters[0]
    sched.ctl(j, "start", ALICE)
    assert given(idle) == (1, 1)


def test_teardown_stops_running_attempts_and_their_tasks_run_again_after_start(sched):
    n, m = node(sched, "n"), node(sched, "m")
    j = job(sched, "fake", "2")
    w = sched.request(n)
    sched.started(w.attempt, "t1")
    sched.ctl(j, "teardown", ALICE)
    assert j.state == "stopped" and list(n.stops) == ["t1"]
    sched.close(w.attempt)
    assert j.tasks[0].state == "pending" and j.tasks[0].failures == 0
    sched.ctl(j, "start", ALICE)
    assert given(sched.request(m)) == (1, 0)   # the stopped task first


def test_delete_removes_the_job_and_a_late_result_is_dropped(sched):
    n = node(sched, "n")
    j = job(sched, "fake", "2")
    w = sched.request(n)
    sched.started(w.attempt, "d1")
    sched.ctl(j, "delete", ALICE)
    assert 1 not in sched.jobs and list(n.stops) == ["d1"]
    assert sched.result(w.attempt, True, b"late") == "deleted"
    with pytest.raises(OwenError, match="no such job"):
        sched.job(1)
    assert sched.storage.jobs() == []


def test_kick_puts_overdue_attempts_back_at_once(sched, clock):
    n, m = node(sched, "n"), node(sched, "m")
    j = job(sched, "fake", "1")
    sched.ctl(j, "deadline 10", ALICE)
    w = sched.request(n)
    sched.started(w.attempt, "k1")
    clock.now += 11
    sched.ctl(j, "kick", ALICE)
    assert w.attempt.state == "failed"
    assert given(sched.request(m)) == (1, 0)


def test_an_attempt_past_its_deadline_and_grace_fails_and_its_worker_is_told(sched, clock):
    n = node(sched, "n")
    j = job(sched, "fake", "1")
    w = sched.request(n)
    sched.started(w.attempt, "late")
    clock.now += 3600 + 29
    sched.tick()
    assert w.attempt.state == "running"
    clock.now += 2
    sched.tick()
    assert w.attempt.state == "failed" and list(n.stops) == ["late"]
    assert "deadline" in j.tasks[0].why


def test_a_lost_connection_disconnects_its_attempts_and_reconnect_hands_the_result_in(sched):
    n, m = node(sched, "n"), node(sched, "m")
    j = job(sched, "fake", "2")
    w = sched.request(n)
    sched.started(w.attempt, "c1")
    taskid = w.attempt.taskid
    assert taskid == "u.1#0"
    sched.disconnect(n, [w.attempt])
    assert w.attempt.state == "disconnected" and n.state == "disconnected"
    assert j.counts["disconnected"] == 1 and j.tasks[0].state == "pending"
    n2 = sched.connect("n", "n")
    assert sched.reconnect(n2, taskid, "c1", True, b"kept\n") == "done"
    wm = sched.request(m)
    assert given(wm) == (1, 1)             # task 0 is not run again
    run(sched, wm)
    assert j.state == "complete"
    assert sched.storage.result(1) == b"data 5 0\nkept\ndata 3 1\nok\n"
    assert sched.reconnect(n2, taskid, "c1", True, b"again\n") == "duplicate"
    with pytest.raises(OwenError, match="not one of this scheduler's"):
        sched.reconnect(n2, "zz.1#0", "c1", True, b"x")


def test_an_offered_attempt_let_go_before_it_started_goes_back_without_a_failure(sched):
    n, m = node(sched, "n"), node(sched, "m")
    j = job(sched, "fake", "1")
    w = sched.request(n)
    sched.withdraw(w)
    assert j.tasks[0].failures == 0 and j.tasks[0].state == "pending"
    assert given(sched.request(m)) == (1, 0)


def test_ctl_messages_are_checked_and_the_error_says_what_to_do(sched):
    j = job(sched, "fake", "2", start=False)
    for message, error in [("", "empty ctl message"), ("frobnicate", "unknown ctl message"),
                           ("priority sideways", "use high, low or a whole number"),
                           ("load fake 3", "cannot load in state stopped"),
                           ("start now", "start takes no arguments"),
                           ("group", "group needs one of all, none"),
                           ("deadline -3", "deadline takes seconds")]:
        with pytest.raises(OwenError, match=error):
            sched.ctl(j, message, ALICE)
    with pytest.raises(PermissionDenied, match="belongs to alice"):
        sched.ctl(j, "start", BOB)
    sched.ctl(j, "start", ROOT)
    assert j.state == "running"
    with pytest.raises(OwenError, match="unknown message"):
        sched.admin_ctl("reboot")
    with pytest.raises(OwenError, match="no such node"):
        sched.admin_ctl("delnode ghost")


def test_a_failed_load_removes_the_job(sched):
    j = sched.clone(ALICE)
    with pytest.raises(OwenError, match="the job was removed"):
        sched.ctl(j, "load fake notanumber", ALICE)
    assert j.id not in sched.jobs and sched.storage.jobs() == []
    j2 = sched.clone(ALICE)
    with pytest.raises(OwenError, match="made no tasks"):
        sched.ctl(j2, "load fake 0", ALICE)
    assert sched.jobs == {}
    assert sched.clone(ALICE).id == 3      # numbers are never given twice


def test_one_identity_per_nodename_while_connected(sched):
    sched.connect("w", "alice")
    with pytest.raises(OwenError, match="in use by alice"):
        sched.connect("w", "mallory")


def test_events_say_what_changed_and_a_reader_too_far_behind_starts_again(tmp_path, clock):
    s = Scheduler(MemoryStorage(tmp_path), fake_load, Rules(history=4), clock=clock)
    seen = s.seq
    j = job(s, "fake", "1")
    lines = [line for _, line in s.changes_since(seen)]
    assert lines[:3] == ["job 1 new", "job 1 stopped", "job 1 running"]
    for i in range(5):
        s.connect(f"n{i}", f"n{i}")
    assert s.changes_since(seen) is None
    assert s.changes_since(s.seq) == []
    assert j.monitor().startswith("state running total 1 complete 0 running 0 failed 0 ")


@pytest.mark.parametrize("backend", [MemoryStorage, SQLiteStorage])
def test_a_restarted_scheduler_goes_on_with_every_job_and_no_result_twice(tmp_path, clock,
                                                                        backend):
    storage = backend(tmp_path / "state")
    s = Scheduler(storage, fake_load, clock=clock)
    n = node(s, "n")
    j = job(s, "fake", "3")
    run(s, s.request(n), b"zero\n")
    w = s.request(n)
    s.started(w.attempt, "lost-in-restart")
    s2 = Scheduler(storage, fake_load, clock=clock)   # the same storage: as after a SIGKILL
    j2 = s2.jobs[j.id]
    assert [t.state for t in j2.tasks] == ["done", "pending", "pending"]
    assert j2.state == "running" and j2.uniq == j.uniq
    n2 = node(s2, "n")
    assert s2.reconnect(n2, w.attempt.taskid, "lost-in-restart", True, b"one\n") == "done"
    run(s2, s2.request(n2), b"two\n")
    assert j2.state == "complete"
    assert s2.storage.result(j.id) == b"data 5 0\nzero\ndata 4 1\none\ndata 4 2\ntwo\n"
