"""rcpu across hosts: three cpu nodes with disks and a fourth host that holds none, each in
a network name space of its own."""

import signal
import subprocess

import pytest

from netns import Network
from support import (BIN, GERYON, cpu_options, env_for, make_corpus, make_home, start_node,
                     start_registry)

RCPU = str(BIN / "rcpu")


@pytest.fixture
def net():
    network = Network(4)
    yield network
    network.close()


def test_blocks_run_on_every_cpu_in_turn_read_disks_across_hosts_and_survive_a_dead_cpu(
        net, tmp_path):
    home = make_home(tmp_path / "admin", hosts=tuple(net.addresses))
    client = 3  # holds no disk and no cpu
    registry = start_registry(home, host=net.addresses[client], prefix=net.prefix(client))
    env = env_for(home, GERYON_REGISTRY=registry.address, GERYON_NDB=tmp_path / "cluster")

    def on_client(argv, **kw):
        return subprocess.run([*net.prefix(client), *argv], env=env, capture_output=True,
                              timeout=90, **kw)

    nodes = [start_node(home, registry.address, tmp_path / f"chunks{i}", f"node{i}", 1, "8M",
                        prefix=net.prefix(i),
                        extra=cpu_options(tmp_path / f"state{i}")) for i in range(3)]
    corpus = make_corpus(tmp_path / "corpus", files=30, words=100)
    assert on_client([GERYON, "load", "--app", "mbox", str(corpus)]).returncode == 0
    assert on_client([GERYON, "refresh"]).returncode == 0

    # from the host that holds nothing: a disk's files, and exactly the disks named
    listed = on_client([RCPU, "{ls /n/d0.mbox/sent/0}", "d0.mbox"])
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.decode().split()) == \
        sorted(p.name for p in (corpus / "sent" / "0").iterdir())
    ns = on_client([RCPU, "{ls /n}", "d0.mbox"]).stdout.decode().split()
    assert len(ns) == 2 and "d0.mbox" in ns

    # ten in a row visit every cpu in turn
    cpus = [on_client([RCPU, "-v", "{true}"]).stderr.decode().split()[2] for _ in range(10)]
    assert len(set(cpus)) == 3
    assert all(cpus[i] != cpus[i + 1] for i in range(9)) and cpus[:3] == cpus[3:6]

    # blocks on two hosts write their output disks; a third block reads both
    wrote = []
    for host in ("node0", "node1"):
        done = on_client([RCPU, "-c", host, f"{{echo from-{host} > $cpudisk/f; echo $cpudisk}}"])
        assert done.returncode == 0, done.stderr
        wrote.append(done.stdout.decode().strip())
    both = on_client([RCPU, "-c", "node2", "{cat /n/*/f}", *wrote])
    assert both.returncode == 0, both.stderr
    assert sorted(both.stdout.decode().split()) == ["from-node0", "from-node1"]

    # SIGKILL a cpu node: the next blocks go elsewhere
    nodes[0].kill(signal.SIGKILL)
    after = [on_client([RCPU, "-v", "{true}"]) for _ in range(4)]
    assert all(r.returncode == 0 for r in after), [r.stderr for r in after]
    assert "node0" not in b"".join(r.stderr for r in after).decode()
    for node in nodes[1:]:
        node.stop()
    registry.stop()
