"""The replicas' pure parts: a received log tail checked record by record before a replica
takes it (Chunk.append_log over chunkfs.tail), and refresh's failover plan: a replica is
served only when it holds all its master last published."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkCorrupt, ChunkError
from geryon.chunkfs.record import HEADER_SIZE, Kind, scan
from geryon.disks.names import disks_of, states
from geryon.disks.plan import place_replicas, plan, replica_names, unfollowing, Target
from geryon.ndb import parse
from geryon.registry.core import Service


def master_and_copy(tmp_path, writes=5):
    """A master with some files, and an empty chunk whose log id is made the master's by
    copying its header (as a whole-image fetch would)."""
    master = Chunk.create(tmp_path / "m", 1 << 20, sync=False)
    for i in range(writes):
        master.write(f"dir{i % 2}/f{i}", os.urandom(300) + b"x" * 2000)
    copy_path = tmp_path / "c"
    copy_path.write_bytes((tmp_path / "m").read_bytes()[:HEADER_SIZE])
    return master, Chunk.open(copy_path, sync=False)


def log_of(chunk):
    return open(chunk.path, "rb").read()[:chunk.used]


def test_a_whole_tail_is_taken_and_the_copy_reads_as_the_master(tmp_path):
    master, copy = master_and_copy(tmp_path)
    tail = log_of(master)[HEADER_SIZE:]
    assert copy.append_log(tail) == len(tail)
    assert log_of(copy) == log_of(master) and copy.log_sum() == master.log_sum()
    assert [e.path for e in copy.walk()] == [e.path for e in master.walk()]
    assert copy.read("dir0/f4") == master.read("dir0/f4")
    copy.close()
    with Chunk.open(tmp_path / "c", whole=True) as again:  # sound, nothing torn
        assert again.used == master.used


def test_a_tail_cut_inside_a_record_is_taken_to_the_last_whole_one(tmp_path):
    master, copy = master_and_copy(tmp_path)
    tail = log_of(master)[HEADER_SIZE:]
    taken = copy.append_log(tail[:len(tail) - 10])
    assert 0 < taken < len(tail) - 10
    assert copy.append_log(tail[taken:]) == len(tail) - taken  # the rest, next time
    assert log_of(copy) == log_of(master)


def test_a_group_without_its_commit_waits_for_it(tmp_path):
    master, copy = master_and_copy(tmp_path, writes=0)
    master.write("a/b/c", b"one")  # new parents: a group BEGIN dir dir file COMMIT
    tail = log_of(master)[HEADER_SIZE:]
    assert copy.append_log(tail[:-48]) == 0  # all but the COMMIT: nothing is taken
    assert copy.used == HEADER_SIZE and not copy.exists("a")
    assert copy.append_log(tail) == len(tail) and copy.read("a/b/c") == b"one"


def test_a_damaged_record_is_refused_and_nothing_is_written(tmp_path):
    master, copy = master_and_copy(tmp_path)
    tail = bytearray(log_of(master)[HEADER_SIZE:])
    tail[len(tail) // 2] ^= 0xFF
    with pytest.raises(ChunkCorrupt, match="the master's log: record at offset"):
        copy.append_log(bytes(tail))
    assert copy.used == HEADER_SIZE and os.path.getsize(copy.path) == HEADER_SIZE


def test_records_meant_for_another_offset_are_refused(tmp_path):
    master, copy = master_and_copy(tmp_path)
    log = log_of(master)
    first_group = next(r for r in scan(log).records if r.kind is Kind.COMMIT)
    assert copy.append_log(log[HEADER_SIZE:first_group.end]) > 0
    with pytest.raises(ChunkCorrupt):  # one skipped: a head's sum is seeded with its offset
        copy.append_log(log[first_group.end + 48:])
    assert copy.used == first_group.end


def test_a_replica_killed_mid_append_reopens_as_a_prefix_and_resumes(tmp_path):
    master, copy = master_and_copy(tmp_path)
    tail = log_of(master)[HEADER_SIZE:]
    copy.close()
    with open(tmp_path / "c", "ab") as f:  # what a SIGKILL in the middle of a pwrite leaves
        f.write(tail[:len(tail) - 100])
    copy = Chunk.open(tmp_path / "c", sync=False)
    assert copy.repair  # the torn tail was cut
    assert log_of(master).startswith(log_of(copy)) and copy.used < master.used
    assert copy.append_log(log_of(master)[copy.used:]) > 0
    assert copy.log_sum() == master.log_sum()


def test_log_sum_to_an_end_and_beyond_it(tmp_path):
    master, _ = master_and_copy(tmp_path)
    assert master.log_sum(HEADER_SIZE) != master.log_sum()
    with pytest.raises(ChunkError, match="cannot sum its first"):
        master.log_sum(master.used + 1)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 200))
def test_garbage_after_a_sound_prefix_only_ever_raises_chunk_errors(tmp_path_factory, junk,
                                                                     cut):
    directory = tmp_path_factory.mktemp("g")
    master, copy = master_and_copy(directory, writes=2)
    tail = log_of(master)[HEADER_SIZE:]
    data = tail[:max(0, len(tail) - cut)] + junk
    try:
        taken = copy.append_log(data)
    except ChunkError:
        assert copy.used == HEADER_SIZE
        return
    assert log_of(master).startswith(log_of(copy)) or junk
    assert copy.used == HEADER_SIZE + taken


NDB = parse("""
name=d0.mbox kfs
	master=node0!chunk0
	replica=d0.mbox.r1
	replica=d0.mbox.r2
name=d0.mbox.r1 kfs
	master=node1!chunk0 replica
name=d0.mbox.r2 kfs
	master=node2!chunk0 replica
""")
LOG = "a" * 32


def chunk(host, port, used, log=LOG, **more):
    return Service(f"tcp!{host}!{port}", {"id": "chunk0", "host": host, "resource": "kfs",
                                          "size": "1000", "used": str(used), "log": log,
                                          **more}, "")


def entry(**attrs):
    base = {"host": "node0", "automount": "1", "persist": "1", "addr": "tcp!node0!1",
            "id": "chunk0", "replica": "d0.mbox.r1 d0.mbox.r2", "used": "900", "log": LOG}
    return Service("d0.mbox", {**base, **attrs}, "")


def action(actions, name="d0.mbox"):
    return next((a for a in actions if a.name == name), None)


def test_the_ndb_names_replicas_in_the_originals_form():
    disks = disks_of(NDB)
    assert disks[0].replicas == ["d0.mbox.r1", "d0.mbox.r2"] and not disks[0].copy
    assert disks[1].copy and disks[1].replicas == []


def test_a_live_master_is_served_with_what_it_publishes():
    services = [chunk("node0", 1, 900), chunk("node1", 2, 900, replicaof="node0!chunk0")]
    attrs = dict(action(plan(disks_of(NDB), services)).attrs)
    assert attrs["addr"] == "tcp!node0!1" and attrs["used"] == "900"
    assert attrs["replica"] == "d0.mbox.r1 d0.mbox.r2" and "serving" not in attrs


def test_a_dead_master_fails_over_to_the_replica_in_sync_and_read_only():
    services = [entry(), chunk("node1", 2, 700, replicaof="node0!chunk0"),
                chunk("node2", 3, 950, replicaof="node0!chunk0")]
    got = action(plan(disks_of(NDB), services))
    assert got.op == "update"  # only adds attributes: the registry changes them in place
    attrs = dict(got.attrs)
    assert (attrs["addr"], attrs["serving"], attrs["readonly"], attrs["master"]) == \
        ("tcp!node2!3", "d0.mbox.r2", "1", "node0!chunk0")
    assert (attrs["used"], attrs["log"]) == ("900", LOG)  # the record stays
    # not while removing waits (refresh --watch just after dialling)
    assert action(plan(disks_of(NDB), services, remove=False)) is None


def test_a_replica_behind_or_on_another_log_is_never_served():
    services = [entry(), chunk("node1", 2, 899), chunk("node2", 3, 5000, log="b" * 32)]
    attrs = dict(action(plan(disks_of(NDB), services)).attrs)
    assert "addr" not in attrs
    assert attrs["down"] == ("its master node0!chunk0 is not served and no replica holds all "
                             "it last published (d0.mbox.r1 is behind by 1 bytes; d0.mbox.r2 "
                             "is behind (fetching the master's new log whole))")
    shown = {s.name: s.state for s in states(disks_of(NDB), [
        Service("d0.mbox", dict(attrs), ""), *services[1:]])}
    assert shown["d0.mbox"].startswith("down: its master node0!chunk0")
    assert shown["d0.mbox.r1"] == "behind by 1 bytes"


def test_nothing_recorded_means_no_replica_is_trusted():
    services = [entry(used="", log=""), chunk("node1", 2, 900)]
    attrs = dict(action(plan(disks_of(NDB), services)).attrs)
    assert "what it last published is not known" in attrs["down"]
    # and with no entry at all, there is nothing to record: no entry is made
    assert action(plan(disks_of(NDB), services[1:])) is None


def test_the_replica_serving_goes_on_serving_and_the_master_takes_back_its_entry():
    serving = entry(addr="tcp!node2!3", host="node2", serving="d0.mbox.r2", readonly="1",
                    master="node0!chunk0")
    copies = [chunk("node1", 2, 900), chunk("node2", 3, 900)]
    assert action(plan(disks_of(NDB), [serving, *copies])) is None  # no flapping to r1
    back = action(plan(disks_of(NDB), [serving, chunk("node0", 1, 900), *copies]))
    assert back.op == "replace" and dict(back.attrs)["addr"] == "tcp!node0!1"
    assert "serving" not in dict(back.attrs)


def test_replicas_go_on_other_nodes_spread_and_named_per_disk():
    spare = [Target("", h, f"chunk{i}", f"tcp!{h}!{i}", 1000, False)
             for h in ("node0", "node1", "node2") for i in range(2)]
    spare.append(Target("d9.mbox", "node1", "chunk9", "x", 1000, True))  # named: not taken
    chosen, short = place_replicas([("d0.a", "node0", []), ("d1.a", "node1", [])], spare, 2)
    assert not short
    assert {t.host for t in chosen["d0.a"]} == {"node1", "node2"}
    assert {t.host for t in chosen["d1.a"]} == {"node0", "node2"}
    assert all(t.name != "d9.mbox" for ts in chosen.values() for t in ts)
    _, short = place_replicas([("d0.a", "node0", [])], spare[:2], 1)
    assert short == ["d0.a has 0 of 1 replicas: no empty chunk is free on another node "
                     "than node0"]
    assert replica_names("d0.a", {"d0.a.r1"}, 2) == ["d0.a.r2", "d0.a.r3"]


def test_refresh_tells_a_named_replica_that_does_not_follow_to_follow():
    services = [chunk("node0", 1, 900), chunk("node1", 2, 900, replicaof="node0!chunk0"),
                chunk("node2", 3, 900)]  # a demoted master, serving as a master
    assert unfollowing(disks_of(NDB), services) == [("tcp!node2!3", "node0!chunk0")]
