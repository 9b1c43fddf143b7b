"""refresh's pure core: which registry changes make it agree with ndb and the live chunks,
and what state `geryon disks` gives each disk."""

import pytest

from geryon.ndb import parse
from geryon.disks.refresh import RefreshError, disks_of, plan, states
from geryon.registry.core import Service

NDB = parse("""
name=d0.mbox kfs
	master=node0!chunk0
	replica=d0.replica
name=d1.mbox kfs
	master=node1!chunk0
name=d2.mbox kfs
	master=node2!chunk0
""")


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
        "replica d0.replica",
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


def test_a_disk_without_a_usable_master_is_named_in_the_error():
    with pytest.raises(RefreshError, match="disk d0.bad has master='node0'"):
        disks_of(parse("name=d0.bad kfs\n\tmaster=node0\n"))


def test_states_of_disks():
    services = [chunk("node0", "chunk0", 1, used=500), chunk("node1", "chunk0", 2),
                entry("d0.mbox", "node0", "tcp!node0!1", "chunk0"),
                entry("d2.mbox", "node2", "tcp!node2!3", "chunk0"),
                entry("d9.old", "node0", "tcp!node0!1", "chunk0")]
    got = [(s.name, s.used, s.state) for s in states(disks_of(NDB), services)]
    assert got == [("d0.mbox", 500, "live"), ("d1.mbox", 48, "unregistered"),
                   ("d2.mbox", None, "stale"), ("d9.old", None, "stale")]
    assert [s.state for s in states(disks_of(NDB), services[:2])][2] == "down"
