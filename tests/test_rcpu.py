"""rcpu on a loopback cluster of two cpu nodes: exact streams and statuses, what is kept,
Ctrl-C, the cache, OpenSSH as a client, and roles.  (Across hosts: test_rcpu_netns.py.)"""

import os
import signal
import subprocess

import pytest

from support import (BIN, GERYON, cpu_options, env_for, make_corpus, make_home, member_home,
                     ssh_options, start_node, start_registry, wait_for)

RCPU = str(BIN / "rcpu")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("rcpu")
    home = make_home(base / "admin")
    registry = start_registry(home)
    env = env_for(home, GERYON_REGISTRY=registry.address, GERYON_NDB=base / "cluster")
    nodes = [start_node(home, registry.address, base / f"chunks{i}", f"node{i}", 2, "64M",
                        extra=cpu_options(base / f"state{i}")) for i in range(2)]
    corpus = make_corpus(base / "corpus", files=40, words=200)
    subprocess.run([GERYON, "load", "--app", "mbox", str(corpus)], env=env, check=True,
                   capture_output=True, timeout=120)
    subprocess.run([GERYON, "refresh"], env=env, check=True, capture_output=True, timeout=60)
    yield {"home": home, "env": env, "corpus": corpus, "nodes": nodes, "base": base,
           "registry": registry}
    for node in nodes:
        node.stop()
    registry.stop()


def rcpu(cluster, *args, input=None, timeout=60, env=None):
    return subprocess.run([RCPU, *args], env=env or cluster["env"], input=input,
                          capture_output=True, timeout=timeout)


def regquery(cluster, *pairs) -> list[str]:
    return subprocess.run([GERYON, "regquery", *pairs], env=cluster["env"], text=True,
                          capture_output=True, check=True).stdout.splitlines()


def test_a_block_lists_its_disk_and_sees_exactly_its_disks(cluster):
    listed = rcpu(cluster, "{ls /n/d0.mbox/inbox/0}", "d0.mbox")
    want = sorted(p.name for p in (cluster["corpus"] / "inbox" / "0").iterdir())
    if listed.returncode == 1 and b"No such file" in listed.stderr:
        pytest.fail(f"d0.mbox lacks inbox/0: {listed.stderr}")
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.decode().split()) == want
    seen = rcpu(cluster, "<ls /n>", "d0.mbox").stdout.decode().split()
    assert len(seen) == 2 and "d0.mbox" in seen and any(n.endswith(".cpu") for n in seen)


@pytest.mark.parametrize("block, status", [("true", 0), ("exit 1", 1), ("exit 255", 255)])
def test_exit_statuses_come_back_exactly(cluster, block, status):
    assert rcpu(cluster, block).returncode == status


def test_death_by_signal_is_reported_as_such(cluster):
    killed = rcpu(cluster, "{kill -KILL $$}")
    assert killed.returncode == 128 + signal.SIGKILL
    assert b"killed by signal KILL" in killed.stderr


def test_streams_are_byte_exact_and_separate(cluster):
    binary = bytes(range(256)) * 3
    done = rcpu(cluster, "{cat; printf 'no newline' >&2}", input=binary)
    assert done.returncode == 0 and done.stdout == binary and done.stderr == b"no newline"


def test_a_hundred_megabytes_of_output_arrive_whole(cluster):
    remote = subprocess.run(f"{RCPU} '{{seq 1 13000000}}' | md5sum", shell=True,
                            env=cluster["env"], capture_output=True, text=True, timeout=120)
    local = subprocess.run("seq 1 13000000 | md5sum", shell=True, capture_output=True,
                           text=True)
    size = subprocess.run("seq 1 13000000 | wc -c", shell=True, capture_output=True, text=True)
    assert int(size.stdout) > 100_000_000
    assert remote.returncode == 0 and remote.stdout == local.stdout


def test_only_a_block_that_exits_0_keeps_what_it_wrote(cluster):
    disk = rcpu(cluster, "-c", "node0", "{echo $cpudisk; echo kept > $cpudisk/kept}")
    assert disk.returncode == 0
    out = disk.stdout.decode().strip()  # /n/dN.cpu
    failed = rcpu(cluster, "-c", "node0", "--out", out,
                  "{echo half > $cpudisk/failed; exit 1}")
    killed = rcpu(cluster, "-c", "node0", "--out", out,
                  "{head -c 1000000 /dev/zero > $cpudisk/partial; kill -9 $$}")
    assert (failed.returncode, killed.returncode) == (1, 137)
    seen = rcpu(cluster, "-c", "node1", "{ls /n/*}", out)
    assert seen.returncode == 0, seen.stderr
    assert "kept" in seen.stdout.decode().split()
    assert "failed" not in seen.stdout.decode() and "partial" not in seen.stdout.decode()


def test_a_block_whose_rcpu_is_killed_leaves_nothing_behind(cluster):
    marker = f"geryon-ctrl-c-{os.getpid()}"
    proc = subprocess.Popen([RCPU, "-c", "node1",
                             f"{{echo started; echo x > $cpudisk/{marker}; "
                             f"exec -a {marker} sleep 1000}}", "d0.mbox"],
                            env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"started\n"
    wait_for(lambda: subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout,
             10, what="the block's sleep to start")
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(20) == 130
    wait_for(lambda: not subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout,
             10, what="the block's processes to go")
    later = rcpu(cluster, "-c", "node0", f"{{ls /n/*/{marker} 2>&1; true}}", "d0.cpu", "d2.cpu")
    assert b"No such file" in later.stdout


def test_a_disk_is_fetched_once_then_served_from_the_cache(cluster):
    def counters(node):
        line = regquery(cluster, "svc", "rstyx", "host", node)[0].split()
        attrs = dict(zip(line[1::2], line[2::2]))
        return int(attrs["fetches"]), int(attrs["cachehits"]), int(attrs["blocks"])

    holder = [line.split()[2] for line in regquery(cluster, "automount", "1")
              if line.split()[0] == "d0.mbox"][0]
    cpu = "node1" if holder == "node0" else "node0"  # a cpu that must fetch d0.mbox
    blocks = counters(cpu)[2]
    first = rcpu(cluster, "-c", cpu, "{cat /n/d0.mbox/*/*/* | wc -c}", "d0.mbox")
    assert first.returncode == 0, first.stderr
    # its counters are published every 2 s
    wait_for(lambda: counters(cpu)[2] > blocks, 10, what="the block to be counted")
    fetches, hits, blocks = counters(cpu)
    assert fetches >= 1
    again = rcpu(cluster, "-c", cpu, "{cat /n/d0.mbox/*/*/* | wc -c}", "d0.mbox")
    assert again.stdout == first.stdout
    wait_for(lambda: counters(cpu)[2] > blocks, 10, what="the second block to be counted")
    assert counters(cpu)[0] == fetches  # the second block fetched nothing
    assert counters(cpu)[1] > hits


def test_openssh_runs_a_block_and_a_monitor_is_refused(cluster):
    home = cluster["home"]
    cpu = regquery(cluster, "svc", "rstyx", "host", "node0")[0].split()[0]
    port = cpu.split("!")[2]
    base = ["ssh", *ssh_options(home), "-p", port, "admin-1@127.0.0.1"]
    ran = subprocess.run([*base, "block d0.mbox -- 'ls /n; echo $((6*7))'"],
                         capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    assert "d0.mbox" in ran.stdout and "42" in ran.stdout
    monitor = member_home(home, cluster["base"] / "monitor", "watcher", "monitor")
    refused = subprocess.run(["ssh", *ssh_options(monitor), "-p", port, "watcher@127.0.0.1",
                              "block -- 'touch /tmp/owned'"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "needs role submit or admin" in refused.stderr


def test_round_robin_visits_every_cpu_in_turn(cluster):
    seen = []
    for _ in range(4):
        done = rcpu(cluster, "-v", "{true}")
        seen.append(done.stderr.decode().split()[2])
    assert seen[0] != seen[1] and seen[0] == seen[2] and seen[1] == seen[3]


def test_a_block_that_fails_to_start_says_why(cluster):
    missing = rcpu(cluster, "{ls}", "d9.mbox")
    assert missing.returncode == 1 and b"d9.mbox is not in the registry" in missing.stderr
    assert rcpu(cluster, "{}").returncode == 1


def test_shipped_files_appear_under_n_client_only_for_that_block(cluster, tmp_path):
    script = tmp_path / "count.sh"
    script.write_text("#!/bin/sh\nwc -l < \"$1\"\n")
    script.chmod(0o755)
    data = tmp_path / "lines.txt"
    data.write_text("a\nb\nc\n")
    done = rcpu(cluster, "--ship", str(script), "--ship", str(data),
                "{ls /n/client; /n/client/count.sh /n/client/lines.txt; ls /n}")
    assert done.returncode == 0, done.stderr
    words = done.stdout.decode().split()
    assert words[:3] == ["count.sh", "lines.txt", "3"] and "client" in words[3:]
    plain = rcpu(cluster, "{ls /n}").stdout.decode().split()
    assert "client" not in plain


def test_a_monitor_cannot_ship_and_shipments_are_private(cluster):
    import asyncio

    import asyncssh

    from geryon.ns.ca import Identity
    home = cluster["home"]
    monitor = member_home(home, cluster["base"] / "monitor2", "watcher2", "monitor")
    cpu = regquery(cluster, "svc", "rstyx", "host", "node0")[0].split()[0]
    port = int(cpu.split("!")[2])

    async def attempt():
        conn = await asyncssh.connect("127.0.0.1", port, **Identity(monitor).client_options())
        sftp = await conn.start_sftp_client()
        with pytest.raises(asyncssh.SFTPError, match="permission denied"):
            await sftp.open("/ship/x", "wb")
        conn.close()
        one = await asyncssh.connect("127.0.0.1", port, **Identity(home).client_options())
        two = await asyncssh.connect("127.0.0.1", port, **Identity(home).client_options())
        f = await (await one.start_sftp_client()).open("/ship/secret", "wb")
        await f.write(b"mine")
        await f.close()
        seen = await (await two.start_sftp_client()).listdir("/ship")
        one.close()
        two.close()
        return seen

    assert "secret" not in asyncio.run(attempt())


def test_listed_names_show_control_characters_escaped(cluster):
    made = rcpu(cluster, "-c", "node1", r"""{touch "$cpudisk/$(printf 'evil\033[2Jname')"; echo $cpudisk}""")
    assert made.returncode == 0, made.stderr
    disk = made.stdout.decode().strip().removeprefix("/n/")
    listed = subprocess.run([GERYON, "ls", disk], env=cluster["env"], capture_output=True,
                            text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "evil\\x1b[2Jname" in listed.stdout and "\x1b" not in listed.stdout


def test_gridrc_functions_and_the_callers_own_gridrc_work_in_a_block(cluster):
    rc = cluster["home"] / "gridrc.sh"
    rc.write_text("hello() { echo \"hello from $1\"; }\n")
    try:
        done = rcpu(cluster, "{hello rc; rmnt d0.mbox && echo mounted; rmnt d9.mbox; "
                             "finddisk node0; nextcpu}", "d0.mbox")
    finally:
        rc.unlink()
    out, err = done.stdout.decode().split("\n"), done.stderr.decode()
    assert out[0] == "hello from rc" and out[1] == "mounted", (out, err)
    assert "d9.mbox is not in this block's name space" in err
    assert [line for line in out[2:] if line.endswith(".cpu")] == ["d0.cpu", "d1.cpu"]
    assert any(line.startswith("tcp!") for line in out[2:])
    without = rcpu(cluster, "{type hello >/dev/null 2>&1 && echo defined || echo none}")
    assert without.stdout == b"none\n"


def test_rcpu_runs_through_the_local_agent_and_without_it_alike(cluster):
    through = rcpu(cluster, "{echo out; echo err >&2; exit 5}")
    run_dir = cluster["home"] / "run"
    assert any(p.suffix == ".sock" for p in run_dir.iterdir()), "no agent socket"
    alone = rcpu(cluster, "{echo out; echo err >&2; exit 5}",
                 env={**cluster["env"], "GERYON_RCPU_AGENT": "off"})
    assert (through.returncode, through.stdout, through.stderr) == \
        (alone.returncode, alone.stdout, alone.stderr) == (5, b"out\n", b"err\n")
    usage = rcpu(cluster, "--bogus")
    assert usage.returncode == 2 and b"no such option" in usage.stderr.lower()


def test_the_fast_client_finds_the_same_home_as_the_config(monkeypatch, tmp_path):
    from geryon.config import home
    from geryon.rcpu.quick import geryon_home
    monkeypatch.delenv("GERYON_HOME", raising=False)
    assert geryon_home() == str(home())
    monkeypatch.setenv("GERYON_HOME", str(tmp_path))
    assert geryon_home() == str(home())


def node1_used(cluster, disk) -> int:
    """The bytes of node1's chunk that a disk names, as its registry entry says."""
    line = [l for l in regquery(cluster, "automount", "1") if l.split()[0] == disk][0]
    chunk_id = dict(zip(line.split()[1::2], line.split()[2::2]))["id"]
    entry = regquery(cluster, "id", chunk_id, "host", "node1", "resource", "kfs")[0].split()
    return int(dict(zip(entry[1::2], entry[2::2]))["used"])


@pytest.mark.parametrize("size", [1_500_000, 600_000])
def test_an_output_disk_is_compacted_once_removals_are_a_quarter_or_most_of_it(cluster, size):
    """1.5 MB removed is over a quarter of a 4 MB cpu chunk; 600 kB is less, but nearly
    all the chunk holds: either way the chunk is compacted and its space comes back, and
    nobody fetching the disk fetches the removed bytes."""
    made = rcpu(cluster, "-c", "node1", "--out", "d3.cpu",
                f"{{head -c {size} /dev/urandom > $cpudisk/big}}")
    assert made.returncode == 0, made.stderr
    wait_for(lambda: node1_used(cluster, "d3.cpu") > size, 10, what="the fill to show it")
    gone = rcpu(cluster, "-c", "node1", "--out", "d3.cpu", "{rm $cpudisk/big}")
    assert gone.returncode == 0, gone.stderr
    wait_for(lambda: node1_used(cluster, "d3.cpu") < 100_000, 10,
             what="compaction to give the space back")


def test_bg_prints_the_output_disk_and_the_block_runs_on(cluster):
    marker = f"bg-{os.getpid()}"
    started = rcpu(cluster, "--bg", "-c", "node0", f"{{sleep 1; echo done > $cpudisk/{marker}}}")
    assert started.returncode == 0, started.stderr
    disk = started.stdout.decode().strip()
    assert disk.endswith(".cpu")
    wait_for(lambda: rcpu(cluster, "-c", "node1", f"{{cat /n/{disk}/{marker} 2>/dev/null; true}}",
                          disk).stdout == b"done\n", 30, 0.5, what="the background block's file")
