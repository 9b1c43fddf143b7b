"""One contract for every scheduler Storage backend: each test runs against both."""

import sqlite3

import pytest

from geryon.owen.store import JobRecord, MemoryStorage, SQLiteStorage

BACKENDS = {"memory": MemoryStorage, "sqlite": SQLiteStorage}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request, tmp_path):
    s = BACKENDS[request.param](tmp_path / "state")
    yield s
    s.close()


def rec(id, **kw):
    return JobRecord(id, kw.pop("owner", "alice"), kw.pop("uniq", "u1"),
                     kw.pop("state", "stopped"), **kw)


def test_an_empty_storage_holds_nothing(storage):
    assert storage.jobs() == [] and storage.tasks(1) == {} and storage.result(1) == b""
    assert storage.result_size(1) == 0


def test_job_numbers_are_never_given_twice_even_after_a_delete(storage):
    a, b = storage.new_job_id(), storage.new_job_id()
    storage.save_job(rec(b))
    storage.delete_job(b)
    assert (a, b, storage.new_job_id()) == (1, 2, 3)


def test_jobs_come_back_by_id_with_every_field(storage):
    full = rec(2, priority=-3, group=("n1", "n 2"), description="it's a test",
               argv=("filesplit", "-l", "/tmp/my file", "test", "{ md5sum; sleep 1 }"),
               deadline=60.0, created=5.5, finished=7.25, counts={"duplicate": 2, "datain": 9})
    storage.save_job(full)
    storage.save_job(rec(1, group=()))
    assert storage.jobs() == [rec(1, group=()), full]


def test_saving_a_job_again_replaces_it_and_later_changes_to_the_record_do_not_leak(storage):
    counts = {"duplicate": 1}
    storage.save_job(rec(1, counts=counts))
    counts["duplicate"] = 5
    storage.save_job(rec(1, state="running"))
    assert storage.jobs() == [rec(1, state="running")]


def test_tasks_keep_their_state_and_failures(storage):
    storage.save_task(1, 0, "failed", 5)
    storage.save_task(1, 3, "pending", 2)
    storage.save_task(1, 3, "pending", 3)
    assert storage.tasks(1) == {0: ("failed", 5), 3: ("pending", 3)}
    assert storage.tasks(2) == {}


def test_finishing_a_task_appends_its_record_and_saves_the_job_at_once(storage):
    storage.finish_task(rec(1, counts={"dataout": 3}), 4, 1, b"data 3 4\nabc")
    storage.finish_task(rec(1, counts={"dataout": 5}), 0, 0, b"data 2 0\nxy")
    assert storage.tasks(1) == {4: ("done", 1), 0: ("done", 0)}
    assert storage.jobs()[0].counts == {"dataout": 5}
    assert storage.result(1) == b"data 3 4\nabcdata 2 0\nxy"
    assert storage.result_size(1) == 23
    assert storage.result(1, 5, 8) == b"3 4\nabcd"
    assert storage.result(1, 20) == b"\nxy"
    assert storage.result(1, 40) == b""


def test_delete_forgets_the_job_its_tasks_result_and_directory(storage):
    data = storage.data_dir(1) / "data"
    data.write_bytes(b"input")
    storage.save_job(rec(1))
    storage.finish_task(rec(1), 0, 0, b"r")
    storage.save_job(rec(2))
    storage.delete_job(1)
    assert [j.id for j in storage.jobs()] == [2]
    assert storage.tasks(1) == {} and storage.result(1) == b"" and not data.exists()


def test_sqlite_state_outlives_the_process_and_a_half_done_finish_leaves_nothing(tmp_path):
    first = SQLiteStorage(tmp_path)
    first.save_job(rec(first.new_job_id()))
    first.finish_task(rec(1), 0, 0, b"data 1 0\na")
    first.flush()
    # what a SIGKILL between the two writes of finish_task would leave: the transaction
    # never commits, so neither the task nor its result is there
    first.db.execute("begin")
    first.db.execute("insert into task values (1, 1, 'done', 0)")
    first.db.execute("insert into result (job, n, start, data) values (1, 1, 10, x'00')")
    again = SQLiteStorage(tmp_path)       # another process, while the first is stuck
    assert again.tasks(1) == {0: ("done", 0)} and again.result(1) == b"data 1 0\na"
    assert [j.id for j in again.jobs()] == [1]
    first.db.execute("rollback")
    assert again.new_job_id() == 2
    mode = sqlite3.connect(tmp_path / "sched.db").execute("pragma journal_mode").fetchone()
    assert mode == ("wal",)


def test_finished_tasks_are_kept_by_flush_and_a_reopened_store_has_only_those(tmp_path):
    s = SQLiteStorage(tmp_path / "state")
    s.save_job(rec(1))
    s.finish_task(rec(1), 0, 0, b"data 2 0\nA\n")
    s.flush()
    s.finish_task(rec(1), 1, 0, b"data 2 1\nB\n")
    assert s.result(1) == b"data 2 0\nA\ndata 2 1\nB\n"   # seen at once by the scheduler
    other = SQLiteStorage(tmp_path / "state")              # as after a SIGKILL now
    assert other.result(1) == b"data 2 0\nA\n" and other.tasks(1) == {0: ("done", 0)}
    other.close()
    s.save_task(1, 2, "pending", 1)                         # any other change commits too
    again = SQLiteStorage(tmp_path / "state")
    assert again.tasks(1) == {0: ("done", 0), 1: ("done", 0), 2: ("pending", 1)}
    again.close()
    s.close()


def test_a_failed_finish_undoes_itself_but_not_the_finishes_before_it(tmp_path):
    s = SQLiteStorage(tmp_path / "state")
    s.finish_task(rec(1), 0, 0, b"kept")
    s.db.execute("create trigger refuse before insert on result when new.n = 1 "
                 "begin select raise(abort, 'disk full'); end")
    with pytest.raises(sqlite3.Error):
        s.finish_task(rec(1), 1, 0, b"lost")
    s.flush()
    assert s.result(1) == b"kept" and s.tasks(1) == {0: ("done", 0)}
    s.close()
