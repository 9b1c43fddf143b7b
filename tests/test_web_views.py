"""The monitors' pure half (geryon.web.views): the trees' text into rows, and the rules
for what the page may write, tested without a network."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geryon.disks.names import DiskState
from geryon.registry.core import Service
from geryon.web import views


def test_jobs_lines_become_rows_with_their_progress():
    text = ("1 complete 12 12 admin-1 0 filesplit -l mytasks test md5sum\n"
            "2 running 3 16 alice 5 job '(job (task exec md5sum))'\n"
            "garbage\n")
    assert views.parse_jobs(text) == [
        {"id": 1, "state": "complete", "complete": 12, "total": 12, "owner": "admin-1",
         "priority": "0", "argv": ["filesplit", "-l", "mytasks", "test", "md5sum"],
         "percent": 100},
        {"id": 2, "state": "running", "complete": 3, "total": 16, "owner": "alice",
         "priority": "5", "argv": ["job", "(job (task exec md5sum))"], "percent": 18}]


def test_a_nodes_line_splits_the_schedulers_pairs_from_its_attributes():
    line = ("w0 state disconnected since 1700000000 address 127.0.0.1 connected 0 "
            "completed 7 failed 1 blacklisted 0 tasks '3.1#4 3.1#5' ncpu 2 jobtype0 test\n")
    [node] = views.parse_nodes(line)
    assert node == {"name": "w0", "state": "disconnected", "since": 1700000000.0,
                    "address": "127.0.0.1", "connected": 0, "completed": 7, "failed": 1,
                    "blacklisted": 0.0, "tasks": ["3.1#4", "3.1#5"],
                    "attrs": {"ncpu": "2", "jobtype0": "test"}}


def test_the_last_monitor_line_counts_with_numbers_as_numbers():
    text = ("state running total 4 complete 1 running 2 failed 0 datain 10 dataout 0 "
            "disconnected 0 duplicate 0 totaltime 0.500 failures 0\n"
            "state running total 4 complete 3 running 1 failed 0 datain 10 dataout 99 "
            "disconnected 0 duplicate 1 totaltime 1.250 failures 2\n")
    m = views.parse_monitor(text)
    assert m["state"] == "running" and m["complete"] == 3 and m["totaltime"] == 1.25
    assert m["percent"] == 75 and m["failures"] == 2
    assert views.parse_monitor("") == {}


@pytest.mark.parametrize("text, group", [("all\n", "all"), ("none\n", "none"), ("", "none"),
                                         ("w0 w1\n", ["w0", "w1"])])
def test_a_group_file_is_all_none_or_names(text, group):
    assert views.parse_group(text) == group


def services():
    return [
        Service("tcp!127.0.0.1!4000", {"svc": "rstyx", "host": "node0", "ncpu": "2",
                                       "load": "0.50", "blocks": "3", "failed": "1",
                                       "running": "1"}),
        Service("tcp!127.0.0.1!4001", {"id": "chunk0", "host": "node0", "resource": "kfs",
                                       "size": "1000", "used": "250", "free": "750"}),
        Service("tcp!127.0.0.1!4002", {"id": "chunk1", "host": "node0", "resource": "kfs",
                                       "size": "1000", "used": "0", "free": "1000",
                                       "replicaof": "node1!chunk0"}),
        Service("d0.mbox", {"addr": "tcp!127.0.0.1!4001", "host": "node0", "id": "chunk0",
                            "replica": "d0r.mbox"}),
        Service("mapreduce.wc", {"svc": "mapreduce", "job": "wc", "state": "running",
                                 "phase": "map", "done": "1", "total": "4", "in": "100"}),
    ]


def test_the_cluster_rows_come_from_the_registrys_entries():
    found = services()
    assert views.cpus(found) == [{"addr": "tcp!127.0.0.1!4000", "host": "node0", "ncpu": 2,
                                  "load": 0.5, "blocks": 3, "failed": 1, "running": 1}]
    assert views.chunk_servers(found) == [{"host": "node0", "chunks": 2, "size": 2000,
                                           "used": 250, "replicas": 1}]
    assert views.mapreduce_jobs(found) == [{"entry": "mapreduce.wc", "job": "wc",
                                            "phase": "map", "state": "running", "done": 1,
                                            "total": 4, "percent": 25,
                                            "attrs": {"in": "100"}}]
    rows = views.disks([DiskState("d0.mbox", "node0", "chunk0", 250, 1000, "live"),
                        DiskState("d0r.mbox", "node1", "chunk0", None, None, "down",
                                  "d0.mbox")], found)
    assert rows[0]["fill"] == 25 and rows[0]["replicas"] == ["d0r.mbox"]
    assert rows[1]["fill"] is None and rows[1]["replica_of"] == "d0.mbox"


@pytest.mark.parametrize("text", ["stop", "start", "priority high", "group add w0 w1",
                                  "delete", "  kick  "])
def test_the_job_controls_pass_as_one_quoted_message(text):
    assert views.job_message(text) == text.strip()


@pytest.mark.parametrize("text, said", [
    ("load filesplit x test md5sum", "'load' is not a control of this page"),
    ("teardown", None), ("", "an empty message"), ("stop\nstart", "one message"),
    ("priority 'high", "unbalanced quote")])
def test_an_admin_or_job_message_outside_the_page_is_refused(text, said):
    with pytest.raises(views.FormError) as err:
        views.admin_message(text) if text == "teardown" else views.job_message(text)
    assert said is None or said in str(err.value)


def test_a_message_past_the_limit_is_refused_by_size():
    with pytest.raises(views.FormError, match="the limit is 65536"):
        views.job_message("group add " + "w" * 70000)


@given(st.text(max_size=200))
def test_any_text_is_a_message_or_our_error(text):
    for check in (views.job_message, views.admin_message):
        try:
            out = check(text)
        except views.FormError:
            continue
        assert out.split()[0] in views.JOB_VERBS + views.ADMIN_VERBS


def test_filesplit_argv_is_what_geryon_owen_start_takes():
    assert views.filesplit_argv("-l", "mytasks", "test", "md5sum") == [
        "filesplit", "-l", "mytasks", "test", "md5sum"]
    assert views.filesplit_argv("", "f", "test", "{ md5sum; sleep 1 }") == [
        "filesplit", "f", "test", "{ md5sum; sleep 1 }"]
    with pytest.raises(views.FormError, match="options start with '-'"):
        views.filesplit_argv("md5sum", "f", "test", "")
    with pytest.raises(views.FormError, match="name the task type"):
        views.filesplit_argv("-l", "f", " ", "md5sum")


@pytest.mark.parametrize("name, base", [("mytasks", "mytasks"), ("C:\\Users\\a\\f.txt", "f.txt"),
                                        ("dir/sub/x", "x")])
def test_an_uploaded_file_is_named_by_its_last_element(name, base):
    assert views.upload_name(name) == base


@pytest.mark.parametrize("name", ["", "..", "a/", "it's", "tab\there"])
def test_an_uploaded_file_without_a_plain_name_is_refused(name):
    with pytest.raises(views.FormError, match="plain name"):
        views.upload_name(name)
