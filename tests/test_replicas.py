"""Replicas on loopback with real processes: load with --replicas, following, failover to a
replica and back, a replica behind never served, promotion, a compacted master, `disks
check`, and the node's replica commands refusing what they must."""

import asyncio
import filecmp
import signal
import time

import pytest

from support import geryon, make_corpus, member_home, start_node, wait_for


@pytest.fixture
def cluster(home, registry, tmp_path):
    """Three nodes with two 1 MiB chunks each; GERYON_NDB in tmp_path."""
    ndb = tmp_path / "cluster.ndb"
    nodes = [start_node(home, registry.address, tmp_path / f"chunks{i}", f"node{i}", 2)
             for i in range(3)]
    env = {"GERYON_REGISTRY": registry.address, "GERYON_NDB": str(ndb)}
    made = type("Cluster", (), {"registry": registry, "nodes": nodes, "ndb": ndb,
                                "env": env, "home": home, "dir": tmp_path})
    yield made
    for node in made.nodes:
        node.stop()


def run(cluster, *args, check=True, timeout=60):
    result = geryon(cluster.home, *args, check=check, timeout=timeout, **cluster.env)
    return result.stdout if check else result


def entry(cluster, disk):
    """The disk's registry entry as a dict ({} when it has none)."""
    from geryon.registry.client import parse_service
    found = [parse_service(line) for line in run(cluster, "regquery", "automount",
                                                 "1").splitlines()]
    return next((dict(s.attrs) for s in found if s.name == disk), {})


def chunk_addr(cluster, host, chunk):
    return run(cluster, "regquery", "-n", "resource", "kfs", "host", host, "id",
               chunk).strip()


def master_of(cluster, disk):
    return run(cluster, "ndb", "query", "-f", str(cluster.ndb), "name", disk,
               "master").strip()


def write_over_sftp(cluster, addr, path, data, home=None):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client

    async def go():
        async with await Client.connect(addr, Identity(home or cluster.home)) as disk:
            await disk.write(path, data)
    asyncio.run(go())


def loaded(cluster, tmp_path, files=60):
    corpus = make_corpus(tmp_path / "corpus", files=files, seed=3)
    lines = run(cluster, "load", "--app", "mbox", "--replicas", "1", str(corpus)).splitlines()
    return corpus, lines


def test_load_with_a_replica_names_it_and_its_content_equals_the_masters(cluster, tmp_path):
    corpus, lines = loaded(cluster, tmp_path, files=120)
    assert lines and all(" replica " in line for line in lines)
    for line in lines:
        disk, host = line.split()[:2]
        copy, copy_host = line.split(" replica ")[1].split()
        assert copy == f"{disk}.r1" and copy_host != host
        assert run(cluster, "ndb", "query", "-f", str(cluster.ndb), "name", disk,
                   "replica").split() == [copy]
        assert run(cluster, "ndb", "query", "-f", str(cluster.ndb), "name", copy,
                   "replica").strip() == "''"  # bare: this entry is a copy
        assert entry(cluster, disk)["replica"] == copy
        ours, theirs = tmp_path / "m" / disk, tmp_path / "r" / disk
        run(cluster, "get", disk, str(ours))
        run(cluster, "get", copy, str(theirs))
        same = filecmp.dircmp(ours, theirs)
        assert not same.left_only and not same.right_only and not same.diff_files
    listing = run(cluster, "disks")
    assert "  d0.mbox.r1" in listing and "in sync" in listing and "live, serving" in listing
    checked = run(cluster, "disks", "check")
    assert "d0.mbox.r1 (replica of d0.mbox): same log to its end" in checked


def test_a_write_to_the_master_reaches_the_replica_within_two_seconds(cluster, tmp_path):
    loaded(cluster, tmp_path)
    host, chunk = master_of(cluster, "d0.mbox").split("!")
    for i in range(3):
        data = f"new mail {i}\n".encode() * 100
        write_over_sftp(cluster, chunk_addr(cluster, host, chunk), f"/late{i}", data)
        start = time.monotonic()
        wait_for(lambda: run(cluster, "cat", f"d0.mbox.r1:late{i}", check=False).stdout
                 == data.decode(), timeout=2, interval=0.05, what="the replica to have it")
        assert time.monotonic() - start < 2
    assert run(cluster, "disks", "check", check=False).returncode == 0


def test_failover_to_the_replica_read_only_and_back_to_the_master(cluster, tmp_path):
    corpus, _ = loaded(cluster, tmp_path)
    host, chunk = master_of(cluster, "d0.mbox").split("!")
    path = run(cluster, "ls", "d0.mbox:inbox/0").split()[0]
    before = run(cluster, "cat", f"d0.mbox:inbox/0/{path}")
    master_addr = entry(cluster, "d0.mbox")["addr"]
    node = cluster.nodes[int(host[4:])]
    node.kill(signal.SIGKILL)
    wait_for(lambda: not chunk_addr(cluster, host, chunk), timeout=6,
             what=f"{host}'s chunks to leave the registry")
    run(cluster, "refresh")
    now = entry(cluster, "d0.mbox")
    assert now["serving"] == "d0.mbox.r1" and now["readonly"] == "1"
    assert now["master"] == f"{host}!{chunk}" and now["addr"] != master_addr
    assert run(cluster, "cat", f"d0.mbox:inbox/0/{path}") == before
    got = tmp_path / "got"
    run(cluster, "get", "d0.mbox", str(got))
    assert (got / "inbox" / "0" / path).read_text() == before
    # a write is refused, naming the master that is missing
    from geryon.ns.client import RemoteError
    with pytest.raises(RemoteError, match=f"its master {host}!{chunk} is down"):
        write_over_sftp(cluster, now["addr"], "/x", b"no")
    assert "serving (read-only)" in run(cluster, "disks")
    # the master's node comes back: the entry returns to it
    node.start()
    run(cluster, "refresh")
    back = entry(cluster, "d0.mbox")
    assert back["addr"] == chunk_addr(cluster, host, chunk) and "serving" not in back
    wait_for(lambda: run(cluster, "disks", "check", check=False).returncode == 0, timeout=5,
             what="disks check to pass")


def test_a_replica_that_is_behind_is_never_served(cluster, tmp_path):
    loaded(cluster, tmp_path)
    host, chunk = master_of(cluster, "d0.mbox").split("!")
    copy_host = master_of(cluster, "d0.mbox.r1").split("!")[0]
    copy_node = cluster.nodes[int(copy_host[4:])]
    copy_node.kill(signal.SIGKILL)  # the replica misses what comes next
    before = int(entry(cluster, "d0.mbox")["used"])
    write_over_sftp(cluster, chunk_addr(cluster, host, chunk), "/late", b"late\n" * 1000)
    wait_for(lambda: run(cluster, "refresh") is not None
             and int(entry(cluster, "d0.mbox")["used"]) > before, timeout=5,
             interval=0.2, what="refresh to record the master's new fill")
    cluster.nodes[int(host[4:])].kill(signal.SIGKILL)
    copy_node.start()  # it cannot catch up: its master is gone
    run(cluster, "refresh")
    down = entry(cluster, "d0.mbox")
    assert "addr" not in down and "behind by" in down.get("down", "")
    result = run(cluster, "cat", "d0.mbox:late", check=False)
    assert result.returncode == 1 and "disk d0.mbox is down" in result.stderr
    assert "behind by" in run(cluster, "disks")


def test_promote_makes_the_replica_master_and_the_old_master_follows_it(cluster, tmp_path):
    loaded(cluster, tmp_path)
    old = master_of(cluster, "d0.mbox")
    new = master_of(cluster, "d0.mbox.r1")
    old_node = cluster.nodes[int(old.split("!")[0][4:])]
    old_node.kill(signal.SIGKILL)
    said = run(cluster, "disks", "promote", "d0.mbox", new.split("!")[0])
    assert f"d0.mbox master {new}" in said
    assert master_of(cluster, "d0.mbox") == new and master_of(cluster, "d0.mbox.r1") == old
    assert entry(cluster, "d0.mbox")["addr"] == chunk_addr(cluster, *new.split("!"))
    write_over_sftp(cluster, entry(cluster, "d0.mbox")["addr"], "/after", b"promoted\n")
    old_node.start()  # refresh tells the old master to follow the new one
    wait_for(lambda: run(cluster, "refresh") is not None and run(
        cluster, "cat", "d0.mbox.r1:after", check=False).stdout == "promoted\n",
        timeout=10, interval=0.3, what="the old master to follow the new")
    assert run(cluster, "disks", "check", check=False).returncode == 0


def test_a_compacted_master_is_fetched_again_whole(cluster, tmp_path):
    loaded(cluster, tmp_path)
    host, chunk = master_of(cluster, "d0.mbox").split("!")
    node = cluster.nodes[int(host[4:])]
    write_over_sftp(cluster, chunk_addr(cluster, host, chunk), "/junk", b"j" * 50_000)
    run(cluster, "ls", "d0.mbox")
    node.stop()
    run(cluster, "chunk", "compact", str(cluster.dir / f"chunks{host[4:]}" / chunk))
    node.start()
    log_id = [line.split()[1] for line in run(
        cluster, "chunk", "stat", str(cluster.dir / f"chunks{host[4:]}" / chunk)).splitlines()
        if line.startswith("log")]
    copy = master_of(cluster, "d0.mbox.r1").split("!")
    assert log_id
    wait_for(lambda: run(cluster, "disks", "check", check=False).returncode == 0, timeout=10,
             interval=0.3, what="the replica to fetch the compacted log")
    # its registered fill follows half a second after a change: wait for it, not a time
    wait_for(lambda: f"log {log_id[0]}" in run(cluster, "regquery", "resource", "kfs", "host",
                                               copy[0], "id", copy[1]),
             timeout=10, interval=0.3, what="the replica's entry to name the new log")


def test_the_replica_commands_check_roles_and_arguments(cluster, tmp_path):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    loaded(cluster, tmp_path)
    master = chunk_addr(cluster, *master_of(cluster, "d0.mbox").split("!"))
    copy = chunk_addr(cluster, *master_of(cluster, "d0.mbox.r1").split("!"))
    viewer = member_home(cluster.home, tmp_path / "viewer", "viewer", "monitor")

    async def ask(addr, command, home=cluster.home):
        async with await Client.connect(addr, Identity(home)) as chunk:
            return await chunk.run(command)

    def said(addr, command, home=cluster.home):
        done = asyncio.run(ask(addr, command, home))
        return done.exit_status, (done.stdout + done.stderr).decode(errors="replace")

    status, out = said(master, "image-sum", viewer)  # any role reads
    log_id, end = out.split()[:2]
    assert status == 0
    status, out = said(master, f"image-tail {log_id} {end} 0", viewer)
    assert status == 0 and out == f"{log_id} {end}\n"
    assert said(master, f"image-tail {log_id} 48 0", viewer)[1].startswith(f"{log_id} {end}\n")
    for bad in ("image-tail", "image-tail xyz 0", f"image-tail {log_id} -1",
                f"image-tail {log_id} 0 31", f"image-tail {log_id} 0 nan", "image-sum 99999999",
                "replicate", "replicate nobang", "promote now"):
        status, out = said(master, bad)
        assert status == 1 and out.startswith(bad.split()[0] + ":"), (bad, out)
    assert "permission denied" in said(copy, "promote", viewer)[1]
    assert "permission denied" in said(master, "replicate node9!chunk0", viewer)[1]
    assert "cannot be a replica of itself" in said(
        master, f"replicate {master_of(cluster, 'd0.mbox')}")[1]
    assert "is a replica of" in said(copy, "image-put")[1]
    assert "is not a replica" in said(master, "promote")[1]
