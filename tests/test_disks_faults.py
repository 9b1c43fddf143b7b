"""Faults on the disks' side, with real SIGKILLs: a node killed while `geryon load` sends
it an image, and the registry killed while `refresh --watch` is making entries.  Afterwards
nothing is lost or half-present, and what stopped short completes."""

import asyncio
import filecmp
import signal
import subprocess

from netns import Network, ip
from support import (GERYON, Process, env_for, geryon, make_corpus, make_home, start_node,
                     start_registry, wait_for)


def test_a_node_killed_while_load_sends_to_it_loses_nothing_and_the_load_completes_again(
        tmp_path):
    net = Network(3)  # node0, node1, and the host the registry and load run on
    before = set(Process.running)
    try:
        home = make_home(tmp_path / "admin", hosts=tuple(net.addresses))
        ndb = tmp_path / "cluster.ndb"
        registry = start_registry(home, host=net.addresses[2], prefix=net.prefix(2))
        env = env_for(home, GERYON_REGISTRY=registry.address, GERYON_NDB=ndb)

        def run(*args):
            return subprocess.run([*net.prefix(2), GERYON, *args], env=env,
                                  capture_output=True, text=True, timeout=120)

        chunks = [tmp_path / "n0", tmp_path / "n1"]
        nodes = [start_node(home, registry.address, chunks[i], f"node{i}", 3,
                            prefix=net.prefix(i)) for i in range(2)]
        corpus = make_corpus(tmp_path / "corpus", files=240, seed=3)
        # The second image goes to node1 (chunks are taken round-robin across nodes); a
        # slow link to node1 holds it in transit long enough to kill node1 mid-way.
        ip("netns", "exec", net.switch, "tc", "qdisc", "add", "dev", "v1", "root", "tbf",
           "rate", "2mbit", "burst", "32kbit", "latency", "5s")
        loading = subprocess.Popen([*net.prefix(2), GERYON, "load", "--app", "mbox",
                                    "--replicas", "0", str(corpus)], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        wait_for(lambda: list(chunks[1].glob(".chunk*.incoming")) or loading.poll(),
                 timeout=60, interval=0.02, what="node1 to be receiving an image")
        assert loading.poll() is None, loading.communicate()
        nodes[1].kill(signal.SIGKILL)
        out, err = loading.communicate(timeout=60)
        assert loading.returncode == 1, (out, err)
        assert "sending d1.mbox to node1 failed: tcp!" in err and "image-put was cut off" in err
        assert "Not written: d1.mbox (named in the ndb file" in err
        assert "Filled, named and registered: d0.mbox." in err
        assert "Run the same load again" in err and "Traceback" not in err
        assert out == ""
        assert "name=d1.mbox kfs" in ndb.read_text()  # kept for the next run to check

        # node1 comes back: what it was receiving is gone, its chunks are as they were
        ip("netns", "exec", net.switch, "tc", "qdisc", "del", "dev", "v1", "root")
        nodes[1] = start_node(home, registry.address, chunks[1], "node1",
                              prefix=net.prefix(1))
        assert not list(chunks[1].glob(".chunk*.incoming"))
        assert run("ls", "d1.mbox").returncode == 1  # not registered until refreshed
        again = run("load", "--app", "mbox", "--replicas", "0", str(corpus))
        assert again.returncode == 0, again.stderr
        assert "files already on disks of mbox were passed over" in again.stderr
        filled = [line.split()[0] for line in again.stdout.splitlines()]
        assert filled[0] == "d1.mbox"  # the disk named for the cut-off image, filled first
        names = ["d0.mbox", *filled]
        assert names == [f"d{i}.mbox" for i in range(len(names))]
        registered = run("regquery", "-n", "automount", "1").stdout.split()
        assert sorted(registered) == sorted(names)

        # every file once, whole: no disk holds a file another holds
        back = tmp_path / "back"
        count = 0
        for name in names:
            result = run("get", name, str(tmp_path / "each" / name))
            assert result.returncode == 0, result.stderr
            count += int(result.stderr.split()[0])
            assert run("get", name, str(back)).returncode == 0
        assert count == 240
        assert not filecmp.dircmp(corpus, back).diff_files
        assert sorted(p.relative_to(back) for p in back.rglob("*")) == \
            sorted(p.relative_to(corpus) for p in corpus.rglob("*"))
        third = run("load", "--app", "mbox", "--replicas", "0", str(corpus))  # nothing to do
        assert (third.returncode, third.stdout) == (0, "")
        assert "240 files already on disks of mbox were passed over" in third.stderr
        for node in nodes:
            node.stop()
        registry.stop()
    finally:
        Process.kill_all(keep=before)
        net.close()


def test_the_registry_killed_while_refresh_watch_makes_entries_ends_with_exactly_them(
        home, registry, tmp_path):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    ndb = tmp_path / "cluster.ndb"
    env = {"GERYON_REGISTRY": registry.address, "GERYON_NDB": str(ndb)}
    nodes = [start_node(home, registry.address, tmp_path / f"c{i}", f"node{i}", 12, "64K")
             for i in range(2)]
    ndb.write_text("name=d0.w kfs master=node0!chunk0\n")
    ready = tmp_path / "refresh.ready"
    watcher = Process(home, ["refresh", "--watch", "--ready", str(ready)], ready, **env)
    assert geryon(home, "regquery", "-n", "automount", "1", **env).stdout.split() == ["d0.w"]

    async def kill_once_adding():
        async with await Client.connect(registry.address, Identity(home)) as client:
            events = await client.open("/event", "r", wait=True)
            ndb.write_text("".join(f"name=d{i}.w kfs master=node{i % 2}!chunk{i // 2}\n"
                                   for i in range(24)))
            while " add d" not in (await asyncio.wait_for(events.read(), 10)).decode():
                pass
            registry.kill(signal.SIGKILL)  # the watch has made one entry, or a few

    asyncio.run(kill_once_adding())
    registry.start()

    def chunk_addr(i):
        return geryon(home, "regquery", "-n", "resource", "kfs", "host", f"node{i % 2}", "id",
                      f"chunk{i // 2}", **env).stdout.strip()

    want = {f"d{i}.w" for i in range(24)}
    wait_for(lambda: len(geryon(home, "regquery", "-n", "resource", "kfs", **env)
                         .stdout.split()) == 24, timeout=10, what="the nodes to register again")
    wait_for(lambda: set(geryon(home, "regquery", "-n", "automount", "1", **env)
                         .stdout.split()) == want, timeout=10, interval=0.2,
             what="refresh --watch to make every entry after the restart")
    for line in geryon(home, "regquery", "automount", "1", **env).stdout.splitlines():
        name = line.split()[0]
        i = int(name[1:].split(".")[0])
        assert line == (f"{name} host node{i % 2} automount 1 persist 1 addr {chunk_addr(i)} "
                        f"id chunk{i // 2}")
    assert watcher.proc.poll() is None  # it rode the restart out
    assert "trying again" in watcher.output()
    assert geryon(home, "refresh", "-v", **env).stdout == ""  # nothing left to do
    watcher.stop()
    for node in nodes:
        node.stop()
