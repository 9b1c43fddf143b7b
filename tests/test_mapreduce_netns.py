"""mapreduce across hosts, each in a network name space of its own, the input disks with
replicas: a node holding input disks SIGKILLed during the map phase of one job and another
during the reduce phase of the next; each job completes with the output of a fault-free
run and no key twice, the dead nodes' disks read from their replicas.

Hosts: 0, 1 and 2 are nodes with chunk disks and a cpu each, 3 runs the registry, the
driver and `refresh --watch` (which fails a disk over to its replica).  Every disk has two
replicas, so each is on all three nodes and node0 alone still holds them all after two
kills."""

import json
import signal
import subprocess

import pytest

from netns import Network
from support import (GERYON, Process, env_for, make_home, start_node, start_registry,
                     wait_for)
from test_mapreduce import text_corpus

pytestmark = pytest.mark.netns


@pytest.fixture
def net():
    network = Network(4)
    yield network
    network.close()


@pytest.mark.timeout(400)
def test_nodes_killed_in_the_map_and_the_reduce_phase_change_nothing(net, tmp_path):
    home = make_home(tmp_path / "admin", hosts=tuple(net.addresses))
    client = 3
    registry = start_registry(home, host=net.addresses[client], prefix=net.prefix(client))
    env = env_for(home, GERYON_REGISTRY=registry.address, GERYON_NDB=tmp_path / "cluster")

    def on_client(*argv, timeout=200):
        return subprocess.run([*net.prefix(client), GERYON, *argv], env=env,
                              capture_output=True, timeout=timeout)

    cpu = ("--cpu", "--cpu-chunks", "2", "--cpu-chunk-size", "16M")
    nodes = [start_node(home, registry.address, tmp_path / f"chunks{i}", f"node{i}", 6,
                        "160K", prefix=net.prefix(i),
                        extra=(*cpu, "--state", str(tmp_path / f"s{i}"))) for i in range(3)]
    corpus = text_corpus(tmp_path / "corpus", files=40, words=2500)
    loaded = on_client("load", "--app", "mbox", "--replicas", "2", str(corpus))
    assert loaded.returncode == 0, loaded.stderr
    assert on_client("refresh").returncode == 0
    ready = tmp_path / "watch.ready"
    watch = Process(home, ["refresh", "--watch", "--ready", str(ready)], ready,
                    prefix=net.prefix(client), GERYON_REGISTRY=registry.address,
                    GERYON_NDB=tmp_path / "cluster")
    disks = sorted(line.split()[0] for line in loaded.stdout.decode().splitlines()
                   if line.startswith("d"))
    assert len(disks) >= 3, loaded.stdout

    master = {d: on_client("ndb", "query", "-f", str(tmp_path / "cluster"), "name", d,
                           "master").stdout.decode().split("!")[0] for d in disks}

    def masters_on(host):
        return {d for d in disks if master[d] == host}
    assert masters_on("node1") and masters_on("node2"), (tmp_path / "cluster").read_text()
    slow_map = "{sleep 2; idx /n/d*.mbox/*/*/*}"
    slow_reduce = "{sleep 2; agg}"

    def start_job(name):
        return subprocess.Popen([*net.prefix(client), GERYON, "mapreduce", "--name", name,
                                 "-R", "3", slow_map, slow_reduce, *disks], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def events(name):
        path = home / "jobs" / name / "events"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def finished(driver, name):
        out, err = driver.communicate(timeout=200)
        assert driver.returncode == 0, err.decode()
        assert out.decode().split("\n")[0] == name
        got = on_client("jobs", "cat", name)
        assert got.returncode == 0, got.stderr
        return got.stdout

    reference = finished(start_job("clean"), "clean")
    keys = [line.split()[0] for line in reference.splitlines()]
    assert len(keys) == len(set(keys)) and len(keys) > 1000

    def same_as_reference(got):
        assert sorted(got.splitlines()) == sorted(reference.splitlines())
        got_keys = [line.split()[0] for line in got.splitlines()]
        assert len(got_keys) == len(set(got_keys))

    # node1, the master of some input disks, dies while a map runs on it
    driver = start_job("map-kill")
    wait_for(lambda: any(e["ev"] == "start" and e["host"] == "node1" and
                         e["task"].startswith("m") for e in events("map-kill")),
             60, 0.1, what="a map on node1")
    nodes[1].kill(signal.SIGKILL)
    same_as_reference(finished(driver, "map-kill"))
    log = on_client("jobs", "log", "map-kill").stdout.decode()
    said = log.lower()  # how the loss shows depends on when the kill came
    assert "on node1" in log and ("node node1 is gone" in said or "cpu node node1" in said
                                  or "status 255" in said or "connection" in said), log

    # node2, the master or replica of every disk left, dies while a reduce runs on it,
    # holding map outputs the reduces need
    driver = start_job("reduce-kill")
    wait_for(lambda: any(e["ev"] == "start" and e["host"] == "node2" and
                         e["task"].startswith("r") for e in events("reduce-kill")),
             90, 0.1, what="a reduce on node2")
    nodes[2].kill(signal.SIGKILL)
    on_node2 = {(e["task"], e["n"]) for e in events("reduce-kill")
                if e["ev"] == "start" and e["host"] == "node2"}
    same_as_reference(finished(driver, "reduce-kill"))
    happened = events("reduce-kill")
    committed_there = {e["task"] for e in happened if e["ev"] == "done"
                       and (e["task"], e["n"]) in on_node2 and e["task"].startswith("m")}
    lost = {e["task"] for e in happened if e["ev"] == "lost"}
    assert committed_there and committed_there <= lost, (committed_there, lost)
    shown = on_client("disks").stdout.decode()
    for disk in masters_on("node1") | masters_on("node2"):  # served by node0's replica now
        assert any(line.split()[:2] == [f"{disk}.r{n}", "node0"] and "serving" in line
                   for line in shown.splitlines() for n in (1, 2)), shown
    watch.stop()
    nodes[0].stop()
    registry.stop()
