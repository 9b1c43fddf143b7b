"""Disks across hosts: three nodes and a fourth host in network name spaces."""

import signal
import subprocess
import time

import pytest

from netns import Network
from support import GERYON, Process, env_for, make_corpus, make_home, start_node, \
    start_registry, wait_for


@pytest.fixture
def net():
    network = Network(4)
    yield network
    network.close()


def test_load_spreads_refresh_registers_cat_from_fourth_host_and_dead_nodes_drop(net, tmp_path):
    home = make_home(tmp_path / "admin", hosts=tuple(net.addresses))
    ndb = tmp_path / "cluster.ndb"
    client = 3  # the fourth host: registry, load, refresh and cat run here
    registry = start_registry(home, host=net.addresses[client], prefix=net.prefix(client))
    env = env_for(home, GERYON_REGISTRY=registry.address, GERYON_NDB=ndb)

    def geryon(*args, host=client, check=True):
        result = subprocess.run([*net.prefix(host), GERYON, *args], env=env,
                                capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, f"geryon {args}: {result.stderr}"
        return result

    nodes = [start_node(home, registry.address, tmp_path / f"n{i}", f"node{i}", 2,
                        prefix=net.prefix(i)) for i in range(3)]
    corpus = make_corpus(tmp_path / "corpus", files=400, seed=7)
    loaded = geryon("load", "--app", "mbox", "--replicas", "0",
                    str(corpus)).stdout.splitlines()
    assert len(loaded) >= 3
    assert {line.split()[1] for line in loaded} == {"node0", "node1", "node2"}

    disks = {line.split()[0]: line.split()[1] for line in loaded}
    entries = geryon("regquery", "automount", "1").stdout.splitlines()
    assert sorted(e.split()[0] for e in entries) == sorted(disks)
    for entry in entries:  # each disk's address is its node's, across the network
        name, addr = entry.split()[0], entry.split(" addr ")[1].split()[0]
        assert addr.split("!")[1] == net.addresses[int(disks[name][-1])]

    # from the fourth host: what d1.mbox holds, and one of its files by cat
    held = tmp_path / "d1"
    geryon("get", "d1.mbox", str(held))
    path = sorted(p for p in held.rglob("m*") if p.is_file())[0].relative_to(held)
    assert geryon("cat", f"d1.mbox:{path}").stdout == (corpus / path).read_text()

    # SIGKILL node2: a plain refresh drops its disks
    nodes[2].kill(signal.SIGKILL)
    gone = {d for d, n in disks.items() if n == "node2"}
    wait_for(lambda: not geryon("regquery", "resource", "kfs", "host", "node2").stdout,
             timeout=6, what="node2's chunks to leave the registry")
    geryon("refresh")
    left = {e.split()[0] for e in geryon("regquery", "automount", "1").stdout.splitlines()}
    assert left == set(disks) - gone

    # refresh --watch does it by itself when node1 dies
    ready = tmp_path / "refresh.ready"  # written once it has dialled and refreshed
    watcher = Process(home, ["refresh", "--watch", "--ready", str(ready)], ready,
                      prefix=net.prefix(client), GERYON_REGISTRY=registry.address,
                      GERYON_NDB=ndb)
    nodes[1].kill(signal.SIGKILL)
    killed = time.monotonic()
    node1_disks = {d for d, n in disks.items() if n == "node1"}
    wait_for(lambda: not node1_disks & {e.split()[0] for e in
                                        geryon("regquery", "automount", "1").stdout.splitlines()},
             timeout=8, interval=0.2, what="refresh --watch to drop node1's disks")
    assert time.monotonic() - killed < 6  # death noticed (<4 s) + refreshed (<2 s)
    assert "node0" in geryon("disks").stdout
    watcher.stop()
    nodes[0].stop()
    registry.stop()
