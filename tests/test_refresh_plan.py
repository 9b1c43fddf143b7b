"""The disks' pure core: which registry changes make refresh agree with ndb and the live
chunks, what state `geryon disks` gives each disk, which disks an ndb file names, and
which chunks a load fills and which files it passes over."""

import pytest

from geryon.disks.errors import DiskError, LoadError
from geryon.disks.names import RegisteredDisk, disks_of, states, unserved
from geryon.disks.plan import not_yet_loaded, plan, plan_load
from geryon.disks.sources import Item
from geryon.ndb import NdbError, parse
from geryon.registry.core import Service

NDB_TEXT = """
name=d0.mbox kfs
	master=node0!chunk0
	replica=d0.replica
name=d1.mbox kfs
	master=node1!chunk0
name=d2.mbox kfs
	master=node2!chunk0
"""
NDB = parse(NDB_TEXT)


def chunk(host, cid, port, used=48):
    return Service(f"tcp!{host}!{port}", {"id": cid, "host": host, "resource": "kfs",
                                          "size": "1000", "used": str(used)}, "")


def entry(name, host, addr, cid, **more):
    return Service(name, {"host": host, "automount": "1", "persist": "1", "addr": addr,
                          "id": cid, **more}, "")


def test_plan_adds_updates_replaces_and_removes():
    services = [chunk("node0", "chunk0", 1), chunk("node1", "chunk0", 2),
                entry("d1.mbox", "node1", "tcp!node1!9", "chunk0"),  # old address
                entry("d2.mbox", "node2", "tcp!node2!3", "chunk0"),  # chunk gone
                entry("d9.old", "node0", "tcp!node0!1", "chunk0")]  # ndb no longer names it
    actions = plan(disks_of(NDB), services)
    assert [str(a) for a in actions] == [
        "add d0.mbox host node0 automount 1 persist 1 addr tcp!node0!1 id chunk0 "
        "replica d0.replica used 48",  # what the master publishes, for failing over
        "update d1.mbox host node1 automount 1 persist 1 addr tcp!node1!2 id chunk0",
        "remove d2.mbox", "remove d9.old"]
    # nothing is removed when asked not to (refresh --watch, just after dialling)
    assert [a.op for a in plan(disks_of(NDB), services, remove=False)] == ["add", "update"]
    # an attribute that must go is a replace: the registry cannot unset one in place
    services[2].attrs["replica"] = "gone"
    assert plan(disks_of(NDB), services)[1].op == "replace"


def test_plan_of_a_registry_that_agrees_is_empty():
    services = [chunk("node1", "chunk0", 2), entry("d1.mbox", "node1", "tcp!node1!2", "chunk0")]
    assert plan(disks_of(NDB)[1:2], services) == []


def test_a_disk_without_a_usable_master_is_an_ndb_error_with_file_and_line():
    with pytest.raises(NdbError, match="^cluster:2: disk d0.bad has master='node0'"):
        disks_of(parse("name=d0.ok kfs master=n!chunk0\nname=d0.bad kfs\n\tmaster=node0\n",
                       source="cluster"))


def test_a_disk_named_twice_is_an_ndb_error_naming_both_lines():
    text = "name=d0.x kfs\n\tmaster=n0!chunk0\n# note\nname=d0.x kfs\n\tmaster=n1!chunk0\n"
    with pytest.raises(NdbError) as caught:
        disks_of(parse(text, source="ndb/cluster"))
    assert str(caught.value) == ("ndb/cluster:4: disk d0.x is named again (first at "
                                 "ndb/cluster:1); a disk has one entry: remove or rename one")
    assert (caught.value.source, caught.value.lineno) == ("ndb/cluster", 4)
    # the same name without kfs is not a disk, and not a second one
    assert [d.name for d in disks_of(parse("name=d0.x kfs master=n!chunk0\nname=d0.x\n"))] \
        == ["d0.x"]


@pytest.mark.parametrize("name", ["event", "a/b", "..", "d0 x", "d0\x01x"])
def test_a_name_that_cannot_be_a_disks_is_an_ndb_error(name):
    entry = f"name='{name}' kfs master=n!chunk0\n"
    with pytest.raises(NdbError, match=r"^f:1: .* is not a disk name"):
        disks_of(parse(entry, source="f"))


def test_unserved_names_the_unknown_node_and_the_missing_chunk():
    services = [chunk("node0", "chunk0", 1), chunk("node0", "chunk1", 4),
                chunk("node1", "chunk0", 2)]
    ndb = parse(NDB_TEXT.replace("node0!chunk0", "node0!chunk7"), source="cluster")
    assert unserved(disks_of(ndb), services) == [
        "cluster:2: disk d0.mbox: node node0 serves no chunk7 (it serves chunk0, chunk1); "
        "correct master=node0!chunk7",
        "cluster:7: disk d2.mbox: no node node2 serves chunks (nodes serving: node0, node1); "
        "start it, or correct master= node2!chunk0"]
    assert unserved(disks_of(NDB)[:2], services) == []


def test_a_registered_disk_says_where_to_dial():
    disk = RegisteredDisk.of(entry("d0.mbox", "node0", "tcp!node0!1", "chunk0", replica="r"))
    assert disk == RegisteredDisk("d0.mbox", "tcp!node0!1", "node0", "chunk0", "r")
    with pytest.raises(DiskError, match="d0.demo is registered but has no addr"):
        RegisteredDisk.of(Service("d0.demo", {"persist": "1"}, ""))


def test_load_fills_named_empty_disks_first_then_spreads_across_nodes():
    ndb = parse("name=d3.m kfs master=node1!chunk0\nname=d1.m kfs master=node0!chunk0\n"
                "name=d0.other kfs master=node0!chunk1\n")
    services = [chunk(h, c, p) for p, (h, c) in enumerate(
        [("node0", "chunk0"), ("node0", "chunk1"), ("node0", "chunk2"), ("node0", "chunk3"),
         ("node1", "chunk0"), ("node1", "chunk1"), ("node2", "chunk0")])]
    services.append(chunk("node2", "chunk1", 9, used=500))  # holds files: never a target
    chosen = plan_load(disks_of(ndb), services, "m")
    assert [(t.name, t.host, t.chunk, t.named) for t in chosen.targets] == [
        ("d1.m", "node0", "chunk0", True), ("d3.m", "node1", "chunk0", True),
        ("", "node0", "chunk2", False), ("", "node1", "chunk1", False),
        ("", "node2", "chunk0", False), ("", "node0", "chunk3", False)]
    assert chosen.next_number == 4 and chosen.filled == []


def test_load_lists_the_apps_filled_disks_and_refuses_one_not_served():
    ndb = parse("name=d0.m kfs master=node0!chunk0\nname=d1.m kfs master=node1!chunk0\n")
    services = [chunk("node0", "chunk0", 1, used=900), chunk("node1", "chunk0", 2)]
    chosen = plan_load(disks_of(ndb), services, "m")
    assert [d.name for d, _ in chosen.filled] == ["d0.m"]
    assert [t.name for t in chosen.targets] == ["d1.m"]
    with pytest.raises(LoadError, match="disk d1.m .node1!chunk0. is named for m but its chunk "
                                        "is not served.*start node node1"):
        plan_load(disks_of(ndb), services[:1], "m")
    with pytest.raises(LoadError, match="application name 'a b'"):
        plan_load([], services, "a b")


def test_files_already_loaded_are_passed_over_by_path_size_and_second():
    items = [Item("a", 3, mtime=100.7), Item("b", 3, mtime=100.0), Item("c", 5, mtime=7.0)]
    present = {("a", 3, 100), ("b", 4, 100), ("c", 5, 8)}
    assert [i.path for i in not_yet_loaded(items, present)] == ["b", "c"]


def test_states_of_disks():
    services = [chunk("node0", "chunk0", 1, used=500), chunk("node1", "chunk0", 2),
                entry("d0.mbox", "node0", "tcp!node0!1", "chunk0"),
                entry("d2.mbox", "node2", "tcp!node2!3", "chunk0"),
                entry("d9.old", "node0", "tcp!node0!1", "chunk0")]
    got = [(s.name, s.used, s.state) for s in states(disks_of(NDB), services)]
    assert got == [("d0.mbox", 500, "live, serving"),
                   ("d0.replica", None, "not named in the ndb file"),
                   ("d1.mbox", 48, "unregistered"), ("d2.mbox", None, "stale"),
                   ("d9.old", None, "stale")]
    assert [s.state for s in states(disks_of(NDB), services[:2])][3] == "down"
