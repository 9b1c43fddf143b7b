"""refresh names the cpu nodes' output chunks dN.cpu; load never fills one."""

from geryon.disks.names import NamedDisk
from geryon.disks.plan import cpu_disks_to_name, plan_load
from geryon.registry.core import Service


def chunk(host, cid, port, cpu=False, used=48):
    attrs = {"id": cid, "host": host, "resource": "kfs", "size": "1048576",
             "used": str(used), "free": "1000"}
    if cpu:
        attrs["cpudisk"] = "1"
    return Service(f"tcp!{host}!{port}", attrs, "node")


SERVICES = [chunk("node0", "chunk0", 1), chunk("node0", "cpu0", 2, cpu=True),
            chunk("node0", "cpu1", 3, cpu=True), chunk("node1", "cpu0", 4, cpu=True)]


def test_unnamed_output_chunks_get_the_next_free_numbers_in_host_order():
    named = [NamedDisk("d0.cpu", "node0", "cpu0"), NamedDisk("d0.mbox", "node0", "chunk0")]
    new = cpu_disks_to_name(named, SERVICES)
    assert [(t.name, t.host, t.chunk) for t in new] == [("d1.cpu", "node0", "cpu1"),
                                                        ("d2.cpu", "node1", "cpu0")]


def test_named_output_chunks_are_left_alone():
    named = [NamedDisk(f"d{i}.cpu", h, c) for i, (h, c) in
             enumerate([("node0", "cpu0"), ("node0", "cpu1"), ("node1", "cpu0")])]
    assert cpu_disks_to_name(named, SERVICES) == []


def test_load_never_fills_an_output_chunk():
    plan = plan_load([], SERVICES, "mbox")
    assert [(t.host, t.chunk) for t in plan.targets] == [("node0", "chunk0")]
