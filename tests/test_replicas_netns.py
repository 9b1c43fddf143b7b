"""Replicas across hosts: three nodes and a client, each a host in a network name space.
The client loads with --replicas 1 and runs refresh --watch; the nodes' links are cut and
their processes SIGKILLed while their replicas follow."""

import signal
import subprocess
import sys
import time

import pytest

from netns import Network
from support import GERYON, Process, env_for, make_corpus, make_home, start_node, \
    start_registry, wait_for

CLIENT = 3

WRITE = """
import asyncio, sys
from geryon.ns.client import Client
async def main():
    async with await Client.connect(sys.argv[1]) as disk:
        for i, path in enumerate(sys.argv[2:]):
            await disk.write("/" + path, (path + "\\n").encode() * 2000)
asyncio.run(main())
"""


@pytest.fixture
def net():
    network = Network(4)
    yield network
    network.close()


class Hosts:
    def __init__(self, net, tmp_path):
        self.net, self.tmp = net, tmp_path
        self.home = make_home(tmp_path / "admin", hosts=tuple(net.addresses))
        self.ndb = tmp_path / "cluster.ndb"
        self.registry = start_registry(self.home, host=net.addresses[CLIENT],
                                       prefix=net.prefix(CLIENT))
        self.env = env_for(self.home, GERYON_REGISTRY=self.registry.address,
                           GERYON_NDB=self.ndb)
        self.nodes = [start_node(self.home, self.registry.address, tmp_path / f"n{i}",
                                 f"node{i}", 2, chunk_size="2M", prefix=net.prefix(i))
                      for i in range(3)]
        ready = tmp_path / "watch.ready"
        self.watch = Process(self.home, ["refresh", "--watch", "--ready", str(ready)], ready,
                             prefix=net.prefix(CLIENT), GERYON_REGISTRY=self.registry.address,
                             GERYON_NDB=self.ndb)

    def geryon(self, *args, check=True, timeout=60):
        result = subprocess.run([*self.net.prefix(CLIENT), GERYON, *args], env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"geryon {args}: {result.stderr}"
        return result

    def write(self, addr, *paths):
        """Write files over SFTP to a chunk, from the client host."""
        return subprocess.run([*self.net.prefix(CLIENT), sys.executable, "-c", WRITE, addr,
                               *paths], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def master(self, disk):
        host, chunk = self.geryon("ndb", "query", "-f", str(self.ndb), "name", disk,
                                  "master").stdout.strip().split("!")
        return host, chunk, int(host[4:])

    def chunk_addr(self, host, chunk):
        return self.geryon("regquery", "-n", "resource", "kfs", "host", host, "id",
                           chunk).stdout.strip()

    def entry(self, disk):
        from geryon.registry.client import parse_service
        found = [parse_service(line) for line in
                 self.geryon("regquery", "automount", "1").stdout.splitlines()]
        return next((dict(s.attrs) for s in found if s.name == disk), {})

    def stop(self):
        for proc in [self.watch, *self.nodes, self.registry]:
            proc.stop()


@pytest.fixture
def hosts(net, tmp_path):
    made = Hosts(net, tmp_path)
    corpus = make_corpus(tmp_path / "corpus", files=150, seed=11)
    made.loaded = made.geryon("load", "--app", "mbox", "--replicas", "1",
                              str(corpus)).stdout.splitlines()
    made.corpus = corpus
    yield made
    made.stop()


def test_failover_from_a_killed_master_and_back_across_hosts(hosts, tmp_path):
    # every disk has a replica on another host, equal to its master file by file
    assert hosts.loaded
    for line in hosts.loaded:
        disk, host = line.split()[:2]
        copy, copy_host = line.split(" replica ")[1].split()
        assert copy_host != host
        ours, theirs = tmp_path / "m" / disk, tmp_path / "r" / disk
        hosts.geryon("get", disk, str(ours))
        hosts.geryon("get", copy, str(theirs))
        files = sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
        assert files and files == sorted(p.relative_to(theirs) for p in theirs.rglob("*")
                                         if p.is_file())
        assert all((ours / f).read_bytes() == (theirs / f).read_bytes() for f in files)
    path = next(p for p in (tmp_path / "m" / "d0.mbox").rglob("m*") if p.is_file())
    path = path.relative_to(tmp_path / "m" / "d0.mbox")
    before = hosts.geryon("cat", f"d0.mbox:{path}").stdout
    # SIGKILL the master's node: within 5 s the replica serves the same bytes
    host, chunk, number = hosts.master("d0.mbox")
    hosts.nodes[number].kill(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: hosts.geryon("cat", f"d0.mbox:{path}", check=False).stdout == before
             and hosts.entry("d0.mbox").get("serving"), timeout=8, interval=0.2,
             what="d0.mbox to be served by its replica")
    took = time.monotonic() - killed
    assert took < 5, f"failover took {took:.1f} s"
    got = tmp_path / "got"
    hosts.geryon("get", "d0.mbox", str(got))
    assert (got / path).read_text() == before
    # a write is refused with a message naming the missing master
    refused = hosts.write(hosts.entry("d0.mbox")["addr"], "nope")
    assert refused.returncode != 0 and f"its master {host}!{chunk} is down" in refused.stderr
    # the killed node restarts: the entry returns to the master; disks check passes
    hosts.nodes[number].start()
    wait_for(lambda: hosts.entry("d0.mbox").get("addr") == hosts.chunk_addr(host, chunk),
             timeout=8, interval=0.3, what="the entry to return to the master")
    assert "serving" not in hosts.entry("d0.mbox")
    wait_for(lambda: hosts.geryon("disks", "check", check=False).returncode == 0, timeout=8,
             interval=0.3, what="disks check to pass")


def test_appends_reach_the_replica_in_two_seconds_and_a_cut_link_catches_up(hosts, net):
    host, chunk, _ = hosts.master("d0.mbox")
    copy_host, _, copy_number = hosts.master("d0.mbox.r1")
    addr = hosts.chunk_addr(host, chunk)
    assert hosts.write(addr, "late0").returncode == 0
    written = time.monotonic()
    wait_for(lambda: hosts.geryon("cat", "d0.mbox.r1:late0", check=False).returncode == 0,
             timeout=3, interval=0.1, what="the replica to have the append")
    assert time.monotonic() - written < 2
    # cut the replica's link while the master changes; restore it: it catches up
    net.cut(copy_number)
    assert hosts.write(addr, *(f"cut{i}" for i in range(20))).returncode == 0
    time.sleep(2)
    net.restore(copy_number)
    wait_for(lambda: hosts.geryon("cat", "d0.mbox.r1:cut19", check=False).returncode == 0,
             timeout=15, interval=0.3, what="the replica to catch up after its link is back")
    wait_for(lambda: hosts.geryon("disks", "check", check=False).returncode == 0, timeout=8,
             interval=0.3, what="disks check to pass")


def test_a_replica_killed_while_following_reopens_as_a_prefix_and_resumes(hosts):
    host, chunk, _ = hosts.master("d0.mbox")
    _, copy_chunk, copy_number = hosts.master("d0.mbox.r1")
    addr = hosts.chunk_addr(host, chunk)
    writer = subprocess.Popen([*hosts.net.prefix(CLIENT), sys.executable, "-c", WRITE, addr,
                               *(f"busy{i}" for i in range(60))], env=hosts.env,
                              stderr=subprocess.PIPE)
    time.sleep(0.5)  # the replica is copying what the writer writes
    hosts.nodes[copy_number].kill(signal.SIGKILL)
    assert writer.wait(60) == 0
    hosts.nodes[copy_number].start()  # it opens (a torn tail cut) and follows again
    wait_for(lambda: hosts.geryon("cat", "d0.mbox.r1:busy59", check=False).returncode == 0,
             timeout=10, interval=0.3, what="the restarted replica to resume following")
    wait_for(lambda: hosts.geryon("disks", "check", check=False).returncode == 0, timeout=8,
             interval=0.3, what="disks check to pass")
    from geryon.chunkfs.chunk import Chunk
    hosts.nodes[copy_number].stop()
    with Chunk.open(hosts.tmp / f"n{copy_number}" / copy_chunk, readonly=True) as copy:
        assert copy.repair is None and copy.exists("busy59")
