"""Chunk disks served by nodes, named in ndb, refreshed into the registry and loaded, on
loopback with real processes."""

import asyncio
import filecmp
import subprocess
import tarfile

import pytest

from support import (geryon, make_corpus, make_home, member_home, ssh_options, start_node,
                     start_registry)


def make_cluster(home, registry, directory, chunks=2):
    """Two nodes with `chunks` 1 MiB chunks each; GERYON_NDB in directory."""
    ndb = directory / "cluster.ndb"
    nodes = [start_node(home, registry.address, directory / f"chunks{i}", f"node{i}", chunks)
             for i in range(2)]
    env = {"GERYON_REGISTRY": registry.address, "GERYON_NDB": str(ndb)}
    return type("Cluster", (), {"registry": registry, "nodes": nodes, "ndb": ndb, "env": env,
                                "home": home, "dir": directory})


@pytest.fixture
def cluster(home, registry, tmp_path):
    """A cluster of its own, for a test that changes it."""
    made = make_cluster(home, registry, tmp_path)
    yield made
    for node in made.nodes:
        node.stop()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One cluster for the tests that only read: a mail corpus loaded as disks of mbox, and
    a tar with dot names as disks of home.  Tests given it must change nothing."""
    directory = tmp_path_factory.mktemp("loaded")
    home = make_home(directory / "admin")
    registry = start_registry(home)
    made = make_cluster(home, registry, directory, chunks=3)
    made.corpus = make_corpus(directory / "corpus", files=240)
    made.mbox = run(made, "load", "--app", "mbox", str(made.corpus)).splitlines()
    src = directory / "dots"
    src.mkdir()
    (src / ".profile").write_text("export A=1\n")
    (src / "plain").write_text("plain\n")
    with tarfile.open(directory / "home.tar", "w") as tar:
        tar.add(src, arcname=".")
    run(made, "load", "--app", "home", str(directory / "home.tar"))
    yield made
    for proc in [*made.nodes, registry]:
        proc.stop()


def run(cluster, *args, check=True):
    """stdout of a geryon command that must succeed, or the whole result when check=False."""
    result = geryon(cluster.home, *args, check=check, **cluster.env)
    return result.stdout if check else result


def test_openssh_sftp_lists_a_disk_and_downloads_a_file(loaded, tmp_path):
    line = run(loaded, "regquery", "automount", "1", "id", "chunk0", "host", "node0")
    name, addr = line.split()[0], line.split(" addr ")[1].split()[0]
    _, host, port = addr.split("!")
    wanted = sorted(run(loaded, "ls", name).split())[0].rstrip("/")
    inner = run(loaded, "ls", f"{name}:{wanted}").split()[0].rstrip("/")
    file = run(loaded, "ls", f"{name}:{wanted}/{inner}").split()[0]
    out = tmp_path / "got"
    result = subprocess.run(
        ["sftp", *ssh_options(loaded.home), "-P", port, "-b", "-", f"admin-1@{host}"],
        input=f"ls {wanted}/{inner}\nget {wanted}/{inner}/{file} {out}\n",
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert file in result.stdout
    assert out.read_bytes() == (loaded.corpus / wanted / inner / file).read_bytes()


def test_load_refresh_disks_cat_get_round_trip(loaded, tmp_path):
    corpus, out = loaded.corpus, loaded.mbox
    assert len(out) >= 2, out  # more than one 1 MiB disk's worth
    assert {line.split()[1] for line in out} == {"node0", "node1"}  # spread across nodes
    names = [line.split()[0] for line in out]
    assert names == [f"d{i}.mbox" for i in range(len(names))]
    assert sum(int(line.split()[2]) for line in out) == 240
    ndb = loaded.ndb.read_text()
    for name in names:
        assert f"name={name} kfs" in ndb
    disks = run(loaded, "disks").splitlines()
    assert disks[0].split() == ["DISK", "NODE", "CHUNK", "FILL", "STATE"]
    # by default each disk has a replica on the other node, listed beneath it, in sync
    assert [row.split()[0] for row in disks[1:]] == \
        [n for name in [*names, "d0.home"] for n in (name, f"{name}.r1")]
    assert all(row.endswith("live, serving") for row in disks[1::2])
    assert all(row.startswith("  ") and row.endswith("in sync") for row in disks[2::2])
    # every file comes back whole, from whichever disk holds it
    back = tmp_path / "back"
    run(loaded, "get", *names, str(back))  # every disk at once
    assert not filecmp.dircmp(corpus, back).diff_files
    assert sorted(p.relative_to(back) for p in back.rglob("*")) == \
        sorted(p.relative_to(corpus) for p in corpus.rglob("*"))
    first = run(loaded, "ls", f"{names[0]}").split()
    assert first and all(n.endswith("/") for n in first)
    some = next(p for p in corpus.rglob("m*") if p.is_file())
    holder = next(n for n in names
                  if run(loaded, "cat", f"{n}:{some.relative_to(corpus)}", check=False)
                  .returncode == 0)
    assert run(loaded, "cat", f"{holder}:{some.relative_to(corpus)}") == some.read_text()


def test_loading_the_same_files_again_passes_over_them(loaded):
    result = run(loaded, "load", "--app", "mbox", str(loaded.corpus), check=False)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == "load: 240 files already on disks of mbox were passed over\n"


def test_tar_members_keep_their_dot_names(loaded):
    assert run(loaded, "ls", "d0.home").split() == [".profile", "plain"]
    assert run(loaded, "cat", "d0.home:.profile") == "export A=1\n"


@pytest.mark.parametrize("name", ["event", "new", "index", "find"])
def test_registry_file_names_are_not_disks(loaded, name):
    # `event` would otherwise be read as a disk's entry, and a read of `event` waits
    result = run(loaded, "ls", name, check=False)
    assert result.returncode == 1
    assert f"'{name}' is not a disk name" in result.stderr


def test_get_and_ls_of_paths_inside_a_disk(loaded, tmp_path):
    corpus = loaded.corpus
    top = run(loaded, "ls", "d0.mbox").split()[0].rstrip("/")  # inbox or sent
    listing = run(loaded, "ls", "-l", f"d0.mbox:{top}").splitlines()
    assert listing and all(line.startswith("d ") for line in listing)  # top/0, top/1, ...
    sub = listing[0].split()[-1]
    file = run(loaded, "ls", f"d0.mbox:{top}/{sub}").split()[0]
    not_dir = run(loaded, "ls", f"d0.mbox:{top}/{sub}/{file}", check=False)
    assert not_dir.returncode == 1
    assert not_dir.stderr.startswith("geryon: tcp!") and not_dir.stderr.endswith(
        f": ls /{top}/{sub}/{file}: /{top}/{sub}/{file} is not a directory\n")
    # a single file, into a directory and under a new name
    out = tmp_path / "out"
    out.mkdir()
    run(loaded, "get", f"d0.mbox:{top}/{sub}/{file}", str(out))
    assert (out / file).read_bytes() == (corpus / top / sub / file).read_bytes()
    run(loaded, "get", f"d0.mbox:{top}/{sub}/{file}", str(out / "renamed"))
    assert (out / "renamed").read_bytes() == (corpus / top / sub / file).read_bytes()
    # a tree, over SFTP
    run(loaded, "get", f"d0.mbox:{top}/{sub}", str(tmp_path / "tree"))
    assert not filecmp.dircmp(corpus / top / sub, tmp_path / "tree").diff_files
    assert sorted(p.name for p in (tmp_path / "tree").iterdir()) == \
        sorted(run(loaded, "ls", f"d0.mbox:{top}/{sub}").split())


def refresh_with(loaded, tmp_path, text):
    """refresh with another ndb file, one that stops it before it changes anything."""
    ndb = tmp_path / "other.ndb"
    ndb.write_text(text)
    return geryon(loaded.home, "refresh", **{**loaded.env, "GERYON_NDB": str(ndb)})


def test_refresh_names_the_bad_disk_and_fails(loaded, tmp_path):
    result = refresh_with(loaded, tmp_path, "name=d0.bad kfs\n\tmaster=node0\n")
    assert result.returncode == 1
    assert result.stderr == (f"geryon: {tmp_path / 'other.ndb'}:1: disk d0.bad has "
                             "master='node0'; write it as master=HOST!chunkN\n")


def test_a_disk_named_twice_is_an_ndb_error_with_file_and_line(loaded, tmp_path):
    result = refresh_with(loaded, tmp_path, "name=d0.x kfs master=node0!chunk0\n"
                                            "name=d0.x kfs master=node1!chunk0\n")
    assert result.returncode == 1
    ndb = tmp_path / "other.ndb"
    assert result.stderr == (f"geryon: {ndb}:2: disk d0.x is named again (first at {ndb}:1); "
                             "a disk has one entry: remove or rename one\n")
    assert "d0.x" not in run(loaded, "regquery", "-n")


def test_refresh_is_idempotent_quiet_and_drops_what_ndb_forgets(cluster, tmp_path):
    run(cluster, "load", "--app", "txt", "--replicas", "0",
        str(make_corpus(tmp_path / "c", files=3)))
    assert run(cluster, "refresh") == ""  # quiet on success
    assert run(cluster, "refresh", "-v") == ""  # nothing to do the second time
    cluster.ndb.write_text(cluster.ndb.read_text().replace("name=d0.txt", "name=d9.txt"))
    assert run(cluster, "refresh", "-v").splitlines() == [
        "add d9.txt host node0 automount 1 persist 1 addr " +
        run(cluster, "regquery", "-n", "resource", "kfs", "host", "node0", "id", "chunk0").strip() +
        " id chunk0", "remove d0.txt"]


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
            with pytest.raises(RemoteError, match="bytes free"):
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
    run(cluster, "load", "--app", "w", "--replicas", "0",
        str(make_corpus(tmp_path / "c", files=3)))
    ready = tmp_path / "refresh.ready"
    watcher = Process(cluster.home, ["refresh", "--watch", "--ready", str(ready)], ready,
                      **cluster.env)
    assert ready.read_text().split("\n")[1] == "dialled 1"
    registry = cluster.registry
    registry.kill(signal.SIGKILL)
    registry.start()
    # persistent disk entries survived; the nodes register their chunks again
    assert "d0.w" in run(cluster, "regquery", "-n", "automount", "1")
    wait_for(lambda: len(run(cluster, "regquery", "-n", "resource", "kfs").split()) == 4,
             timeout=8, what="nodes to register again")
    wait_for(lambda: "dialled 2" in ready.read_text(), timeout=10,
             what="refresh --watch to dial the registry again")
    # the watcher, dialled again, follows an edit of the ndb file within 2 s; what the edit
    # removes goes once the grace after dialling (GRACE) is over
    from geryon.disks.refresh import GRACE
    cluster.ndb.write_text(cluster.ndb.read_text().replace("name=d0.w ", "name=d5.w "))
    wait_for(lambda: "d5.w" in run(cluster, "regquery", "-n", "automount", "1").split(),
             timeout=2, interval=0.1, what="refresh --watch to follow the ndb edit (2 s)")
    wait_for(lambda: run(cluster, "regquery", "-n", "automount", "1").split() == ["d5.w"],
             timeout=GRACE + 2, interval=0.1, what="the grace to end and d0.w to go")
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
            with pytest.raises(RemoteError, match="bytes free"):
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


def test_refresh_says_which_disks_name_a_node_or_chunk_nothing_serves(cluster):
    cluster.ndb.write_text("name=d0.t kfs master=node0!chunk0\nname=d1.t kfs master=nod1!chunk0\n"
                           "name=d2.t kfs master=node1!chunk9\n")
    result = run(cluster, "refresh", check=False)
    assert (result.returncode, result.stdout) == (0, "")
    ndb = cluster.ndb
    assert result.stderr.splitlines() == [
        f"refresh: {ndb}:2: disk d1.t: no node nod1 serves chunks (nodes serving: node0, "
        "node1); start it, or correct master= nod1!chunk0",
        f"refresh: {ndb}:3: disk d2.t: node node1 serves no chunk9 (it serves chunk0, chunk1); "
        "correct master=node1!chunk9"]
    assert run(cluster, "regquery", "-n", "automount", "1").split() == ["d0.t"]


def test_load_counts_a_link_to_a_directory_in_what_it_leaves_out(cluster, tmp_path):
    import os
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "real" / "f").write_text("f\n")
    os.symlink(src / "real", src / "alias")
    result = run(cluster, "load", "--app", "l", str(src), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("load: leaving out 1 that are not plain files (links, devices, "
                             f"FIFOs), e.g. {src / 'alias'}\n")
    assert run(cluster, "ls", "d0.l").split() == ["real/"]


def test_a_node_is_ready_once_its_chunks_are_registered(home, registry, tmp_path):
    from support import Process
    ready = tmp_path / "node.ready"
    node = Process(home, ["node", "-R", registry.address, "--chunks", str(tmp_path / "c"),
                          "--new-chunks", "3", "--chunk-size", "64K", "--name", "n9",
                          "--ready", str(ready)], ready)
    said = ready.read_text().split()
    registered = geryon(home, "regquery", "-R", registry.address, "-n", "host", "n9").stdout
    assert said[:2] == ["node", "n9"] and sorted(said[2:]) == sorted(registered.split())
    assert len(said) == 5
    node.stop()
