"""Chunk disks served by nodes, named in ndb, refreshed into the registry and loaded, on
loopback with real processes."""

import asyncio
import filecmp
import subprocess

import pytest

from support import geryon, make_corpus, member_home, ssh_options, start_node


@pytest.fixture
def cluster(home, registry, tmp_path):
    """A registry and two nodes with two 1 MiB chunks each; GERYON_NDB in tmp_path."""
    ndb = tmp_path / "cluster.ndb"
    nodes = [start_node(home, registry.address, tmp_path / f"chunks{i}", f"node{i}", 2)
             for i in range(2)]
    env = {"GERYON_REGISTRY": registry.address, "GERYON_NDB": str(ndb)}
    yield type("Cluster", (), {"registry": registry, "nodes": nodes, "ndb": ndb, "env": env,
                               "home": home})
    for node in nodes:
        node.stop()


def run(cluster, *args, check=True):
    """stdout of a geryon command that must succeed, or the whole result when check=False."""
    result = geryon(cluster.home, *args, check=check, **cluster.env)
    return result.stdout if check else result


def test_openssh_sftp_lists_a_disk_and_downloads_a_file(cluster, tmp_path):
    corpus = make_corpus(tmp_path / "corpus", files=4)
    run(cluster, "load", "--app", "mail", str(corpus))
    line = run(cluster, "regquery", "automount", "1").splitlines()[0]
    addr = line.split(" addr ")[1].split()[0]
    _, host, port = addr.split("!")
    out = tmp_path / "m0"
    result = subprocess.run(
        ["sftp", *ssh_options(cluster.home), "-P", port, "-b", "-", f"admin-1@{host}"],
        input=f"ls sent/0\nget sent/0/m0 {out}\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "m0" in result.stdout
    assert out.read_bytes() == (corpus / "sent/0/m0").read_bytes()


def test_load_refresh_disks_cat_get_round_trip(cluster, tmp_path):
    corpus = make_corpus(tmp_path / "corpus", files=240)
    out = run(cluster, "load", "--app", "mbox", str(corpus)).splitlines()
    assert len(out) >= 2, out  # more than one 1 MiB disk's worth
    assert {line.split()[1] for line in out} == {"node0", "node1"}  # spread across nodes
    names = [line.split()[0] for line in out]
    assert names == [f"d{i}.mbox" for i in range(len(names))]
    assert sum(int(line.split()[2]) for line in out) == 240
    ndb = cluster.ndb.read_text()
    for name in names:
        assert f"name={name} kfs" in ndb
    disks = run(cluster, "disks").splitlines()
    assert disks[0].split() == ["DISK", "NODE", "CHUNK", "FILL", "STATE"]
    assert all(row.split()[-1] == "live" for row in disks[1:])
    # every file comes back whole, from whichever disk holds it
    back = tmp_path / "back"
    run(cluster, "get", *names, str(back))  # every disk at once
    assert not filecmp.dircmp(corpus, back).diff_files
    assert sorted(p.relative_to(back) for p in back.rglob("*")) == \
        sorted(p.relative_to(corpus) for p in corpus.rglob("*"))
    first = run(cluster, "ls", f"{names[0]}").split()
    assert first and all(n.endswith("/") for n in first)
    some = next(p for p in corpus.rglob("m*") if p.is_file())
    holder = next(n for n in names
                  if run(cluster, "cat", f"{n}:{some.relative_to(corpus)}", check=False)
                  .returncode == 0)
    assert run(cluster, "cat", f"{holder}:{some.relative_to(corpus)}") == some.read_text()


def test_refresh_is_idempotent_quiet_and_drops_what_ndb_forgets(cluster, tmp_path):
    run(cluster, "load", "--app", "txt", str(make_corpus(tmp_path / "c", files=3)))
    assert run(cluster, "refresh") == ""  # quiet on success
    assert run(cluster, "refresh", "-v") == ""  # nothing to do the second time
    cluster.ndb.write_text(cluster.ndb.read_text().replace("name=d0.txt", "name=d9.txt"))
    assert run(cluster, "refresh", "-v").splitlines() == [
        "add d9.txt host node0 automount 1 persist 1 addr " +
        run(cluster, "regquery", "-n", "resource", "kfs", "host", "node0", "id", "chunk0").strip() +
        " id chunk0", "remove d0.txt"]


def test_refresh_names_the_bad_disk_and_fails(cluster):
    cluster.ndb.write_text("name=d0.bad kfs\n\tmaster=node0\n")
    result = run(cluster, "refresh", check=False)
    assert result.returncode == 1
    assert "disk d0.bad has master='node0'" in result.stderr


def test_file_larger_than_a_disk_is_refused_or_split(cluster, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "log").write_text("".join(f"line {i} {'x' * 60}\n" for i in range(40000)))  # 2.7 MB
    result = run(cluster, "load", "--app", "logs", str(big), check=False)
    assert result.returncode == 1
    assert "larger than a disk" in result.stderr and "--split-lines" in result.stderr
    assert not cluster.ndb.exists()  # nothing was loaded or named
    out = run(cluster, "load", "--app", "logs", "--split-lines", str(big))
    assert out.strip()
    back = tmp_path / "back"
    for line in out.splitlines():
        run(cluster, "get", line.split()[0], str(back))
    pieces = sorted(back.glob("log.*"))
    assert len(pieces) >= 3
    assert b"".join(p.read_bytes() for p in pieces) == (big / "log").read_bytes()
    assert all(p.read_bytes().endswith(b"\n") for p in pieces)


def test_only_cpu_and_admin_write_a_disk(cluster, tmp_path):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client, RemoteError
    addr = run(cluster, "regquery", "-n", "host", "node0", "id", "chunk1").strip()
    viewer = member_home(cluster.home, tmp_path / "viewer", "viewer", "monitor")
    cpu = member_home(cluster.home, tmp_path / "cpu", "cpu1", "cpu")

    async def attempt(home, path):
        client = await Client.connect(addr, Identity(home))
        try:
            await client.write(path, b"hello")
            return await client.read(path)
        finally:
            await client.close()

    with pytest.raises(RemoteError, match="permission denied"):
        asyncio.run(attempt(viewer, "/x"))
    assert asyncio.run(attempt(cpu, "/x")) == b"hello"
    # '..' cannot climb out: paths are taken from the disk's root, so this is /y on the disk
    assert asyncio.run(attempt(cpu, "/../../y")) == b"hello"
    with pytest.raises(RemoteError, match="NUL"):
        asyncio.run(attempt(cpu, "/z\0"))


def test_a_full_disk_refuses_a_write_and_keeps_what_it_had(cluster):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client, RemoteError
    import os
    addr = run(cluster, "regquery", "-n", "host", "node1", "id", "chunk1").strip()

    async def fill():
        client = await Client.connect(addr, Identity(cluster.home))
        try:
            await client.write("/keep", kept)
            with pytest.raises(RemoteError, match="no room"):
                await client.write("/noise", os.urandom(600_000))
            assert await client.ls("/") == ["keep"]
            return await client.read("/keep")
        finally:
            await client.close()

    kept = os.urandom(600_000)  # random bytes do not compress: two do not fit in 1 MiB
    assert asyncio.run(fill()) == kept


def test_refresh_watch_rides_out_a_registry_restart(cluster, tmp_path):
    import signal
    from support import Process, wait_for
    run(cluster, "load", "--app", "w", str(make_corpus(tmp_path / "c", files=3)))
    watcher = Process(cluster.home, ["refresh", "--watch"], **cluster.env)
    registry = cluster.registry
    registry.kill(signal.SIGKILL)
    registry.start()
    # persistent disk entries survived; the nodes register their chunks again
    assert "d0.w" in run(cluster, "regquery", "-n", "automount", "1")
    wait_for(lambda: len(run(cluster, "regquery", "-n", "resource", "kfs").split()) == 4,
             timeout=8, what="nodes to register again")
    # the watcher, dialled again, follows an edit of the ndb file within 2 s
    cluster.ndb.write_text(cluster.ndb.read_text().replace("name=d0.w ", "name=d5.w "))
    wait_for(lambda: run(cluster, "regquery", "-n", "automount", "1").split() == ["d5.w"],
             timeout=3, interval=0.1, what="refresh --watch to follow the ndb edit (2 s)")
    # and still drops the disks of a node that dies
    owner = run(cluster, "regquery", "automount", "1").split(" host ")[1].split()[0]
    cluster.nodes[int(owner[-1])].kill(signal.SIGKILL)
    wait_for(lambda: "d5.w" not in run(cluster, "regquery", "-n", "automount", "1"),
             timeout=12, interval=0.3, what="refresh --watch to drop the dead node's disk")
    watcher.stop()


def disk_address(cluster, node="node0", chunk="chunk1"):
    return run(cluster, "regquery", "-n", "resource", "kfs", "host", node, "id", chunk).strip()


def test_a_failed_write_stores_nothing_and_a_file_being_made_can_be_stated(cluster):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client, RemoteError
    addr = disk_address(cluster)

    async def scenario():
        client = await Client.connect(addr, Identity(cluster.home))
        try:
            sftp = await client.main()
            f = await client.open("/partial", "w")
            await f.write(b"x" * 1000)
            assert (await sftp.stat("/partial")).size == 1000  # visible while being made
            f.offset = 2_000_000  # past the disk's capacity
            with pytest.raises(RemoteError, match="more than this disk"):
                await f.write(b"y")
            await f.close()
            return await client.ls("/")
        finally:
            await client.close()

    assert asyncio.run(scenario()) == []  # all or nothing: nothing


def test_sftp_put_p_keeps_mode_and_time(cluster, tmp_path):
    import os
    addr = disk_address(cluster)
    _, host, port = addr.split("!")
    local = tmp_path / "script"
    local.write_text("#!/bin/sh\necho hi\n")
    os.chmod(local, 0o750)
    os.utime(local, (1_000_000_000, 1_000_000_000))
    result = subprocess.run(
        ["sftp", *ssh_options(cluster.home), "-P", port, "-b", "-", f"admin-1@{host}"],
        input=f"put -p {local} script\nls -l script\n", capture_output=True, text=True,
        timeout=30)
    assert result.returncode == 0, result.stderr
    assert "-rwxr-x---" in result.stdout
    assert "2001" in result.stdout  # 1e9 s is September 2001
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client

    async def mode():
        client = await Client.connect(addr, Identity(cluster.home))
        try:
            attrs = await (await client.main()).stat("/script")
            return attrs.permissions & 0o777, attrs.mtime
        finally:
            await client.close()

    assert asyncio.run(mode()) == (0o750, 1_000_000_000)


def test_tar_members_keep_their_dot_names(cluster, tmp_path):
    import tarfile
    src = tmp_path / "src"
    src.mkdir()
    (src / ".profile").write_text("export A=1\n")
    (src / "plain").write_text("plain\n")
    archive = tmp_path / "home.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname=".")
    run(cluster, "load", "--app", "home", str(archive))
    assert run(cluster, "ls", "d0.home").split() == [".profile", "plain"]
    assert run(cluster, "cat", "d0.home:.profile") == "export A=1\n"


@pytest.mark.parametrize("name", ["event", "new", "index", "find"])
def test_registry_file_names_are_not_disks(cluster, name):
    # `event` would otherwise be read as a disk's entry, and a read of `event` waits
    result = run(cluster, "ls", name, check=False)
    assert result.returncode == 1
    assert f"'{name}' is not a disk name" in result.stderr


def test_get_and_ls_of_paths_inside_a_disk(cluster, tmp_path):
    corpus = make_corpus(tmp_path / "corpus", files=12)
    run(cluster, "load", "--app", "p", str(corpus))
    listing = run(cluster, "ls", "-l", "d0.p:inbox").splitlines()
    assert listing and all(line.startswith("d ") for line in listing)  # inbox/0, inbox/1
    # a single file, into a directory and under a new name
    out = tmp_path / "out"
    out.mkdir()
    run(cluster, "get", "d0.p:inbox/0/m1", str(out))
    assert (out / "m1").read_bytes() == (corpus / "inbox/0/m1").read_bytes()
    run(cluster, "get", "d0.p:inbox/0/m1", str(out / "renamed"))
    assert (out / "renamed").read_bytes() == (corpus / "inbox/0/m1").read_bytes()
    # a tree, over SFTP
    run(cluster, "get", "d0.p:sent", str(tmp_path / "tree"))
    assert not filecmp.dircmp(corpus / "sent", tmp_path / "tree").diff_files
    assert sorted(p.relative_to(tmp_path / "tree") for p in (tmp_path / "tree").rglob("*")) == \
        sorted(p.relative_to(corpus / "sent") for p in (corpus / "sent").rglob("*"))
