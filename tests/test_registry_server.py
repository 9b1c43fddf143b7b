"""The registry as a real process, used by the real command, OpenSSH and our client."""

import asyncio
import signal
import subprocess
import time

import pytest

from support import GERYON, Process, geryon, make_home, member_home, ssh_options, \
    start_registry, wait_for


def sftp(home, port, user, commands, key_home=None):
    opts = ssh_options(key_home or home)
    return subprocess.run(["sftp", *opts, "-P", str(port), "-b", "-", f"{user}@127.0.0.1"],
                          input=commands, capture_output=True, text=True, timeout=30)


def regquery(home, registry, *args):
    return geryon(home, "regquery", "-R", registry.address, *args, check=True).stdout


def test_openssh_sftp_lists_registry_and_reads_index(home, registry, tmp_path):
    geryon(home, "regquery", "-R", registry.address, check=True)
    hold = Process(home, ["register", "-R", registry.address, "-a", "svc", "echo", "--",
                          "python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}"])
    try:
        wait_for(lambda: "svc echo" in regquery(home, registry), what="registration")
        out = tmp_path / "index.txt"
        result = sftp(home, registry.port, "admin-1", f"ls\nget index {out}\n")
        assert result.returncode == 0, result.stderr
        for name in ("new", "index", "find", "event"):
            assert name in result.stdout
        assert out.read_text() == regquery(home, registry)
        assert "svc echo" in out.read_text()
    finally:
        hold.stop()


def test_openssh_with_own_key_or_other_ca_is_refused(home, registry, tmp_path):
    stray = tmp_path / "stray"
    stray.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stray / "id_ed25519")],
                   check=True)
    (stray / "known_hosts").write_text((home / "known_hosts").read_text())
    result = sftp(home, registry.port, "admin-1", "ls\n", key_home=stray)
    assert result.returncode != 0
    assert "Permission denied" in result.stderr

    other = make_home(tmp_path / "other")  # a certificate from another CA, same name
    own_trust = (other / "known_hosts").read_text()
    (other / "known_hosts").write_text((home / "known_hosts").read_text())
    result = sftp(home, registry.port, "admin-1", "ls\n", key_home=other)
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
    (other / "known_hosts").write_text(own_trust)

    # and our client will not talk to a server whose host certificate is from another CA
    result = geryon(other, "regquery", "-R", registry.address)
    assert result.returncode == 1
    assert "not from this cluster's CA" in result.stderr


def test_sigkilled_holder_is_dropped_within_5s(home, registry):
    hold = Process(home, ["register", "-R", registry.address, "-a", "svc", "doomed", "--",
                          "python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}"])
    wait_for(lambda: "doomed" in regquery(home, registry), what="registration")
    hold.kill(signal.SIGKILL)
    start = time.monotonic()
    wait_for(lambda: "doomed" not in regquery(home, registry), timeout=5, interval=0.2,
             what="the entry to go")
    assert time.monotonic() - start < 5


def test_persistent_entry_survives_sigkill_and_live_ones_come_back(home, tmp_path):
    registry = start_registry(home)
    address = registry.address
    geryon(home, "regquery", "-R", address, check=True)
    # a shell-style registration: open new, write, close -- kept because persist 1
    asyncio.run(write_new(home, address, "d0.mbox host h0 persist 1 addr tcp!h0!1"))
    hold = Process(home, ["register", "-R", address, "-a", "svc", "live", "--",
                          "python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}"])
    try:
        wait_for(lambda: "svc live" in regquery(home, registry), what="live registration")
        registry.kill(signal.SIGKILL)
        registry.start()  # same port, same state directory
        restarted = time.monotonic()
        assert "d0.mbox host h0 persist 1 addr tcp!h0!1" in regquery(home, registry)
        wait_for(lambda: "svc live" in regquery(home, registry), timeout=5, interval=0.2,
                 what="the holder to register again")
        assert time.monotonic() - restarted < 5
    finally:
        hold.stop()
        registry.stop()


async def write_new(home, address, line):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    client = await Client.connect(address, Identity(home))
    try:
        await client.write("/new", line)
    finally:
        await client.close()


async def session(home, address, work):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    client = await Client.connect(address, Identity(home))
    try:
        return await work(client)
    finally:
        await client.close()


@pytest.mark.parametrize("path,data,error", [
    ("/new", "bad\x01name a b", "bad character in service name"),
    ("/new", "find a b", "bad service name"),
    ("/new", "svc odd", "odd attribute/value pairs"),
    ("/new", "taken x y", "duplicate service name"),
    ("/find", "just-one", "odd attribute/value pairs"),
    ("/taken", "x z", "permission denied"),
])
def test_each_error_over_the_wire_and_the_server_keeps_serving(home, registry, tmp_path,
                                                               path, data, error):
    from geryon.ns.client import RemoteError
    other = member_home(home, tmp_path / "bob", "bob", "worker,cpu")
    asyncio.run(write_new(home, registry.address, "taken x y persist 1"))

    async def attempt(client):
        with pytest.raises(RemoteError, match=error):
            await client.write(path, data, read_back=True)
        return await client.read("/index")

    index = asyncio.run(session(other, registry.address, attempt))
    assert index == b"taken x y persist 1\n"
    assert regquery(home, registry) == "taken x y persist 1\n"


def test_owner_updates_and_removes_others_cannot(home, registry, tmp_path):
    from geryon.ns.client import RemoteError
    bob = member_home(home, tmp_path / "bob", "bob", "worker")
    asyncio.run(write_new(bob, registry.address, "bobs x 1 persist 1"))

    async def as_bob(client):
        await client.write("/bobs", "x 2 y 3")
        return await client.read("/bobs")

    assert asyncio.run(session(bob, registry.address, as_bob)) == b"bobs x 2 persist 1 y 3\n"
    carol = member_home(home, tmp_path / "carol", "carol", "worker")

    async def as_carol(client):
        with pytest.raises(RemoteError, match="permission denied"):
            await client.write("/bobs", "x 9")
        sftp = await client.main()
        with pytest.raises(Exception, match="permission denied"):
            await sftp.remove("/bobs")

    asyncio.run(session(carol, registry.address, as_carol))

    async def remove(client):
        await (await client.main()).remove("/bobs")

    asyncio.run(session(bob, registry.address, remove))
    assert regquery(home, registry) == ""


def test_monitor_role_cannot_register(home, registry, tmp_path):
    watcher = member_home(home, tmp_path / "mon", "mon", "monitor")
    from geryon.ns.client import RemoteError

    async def attempt(client):
        with pytest.raises(RemoteError, match="permission denied; write needs role"):
            await client.write("/new", "x a b")

    asyncio.run(session(watcher, registry.address, attempt))
    assert regquery(home, registry) == ""


def test_regwatch_prints_each_change(home, registry, tmp_path):
    ready = tmp_path / "watching"
    watch = subprocess.Popen([GERYON, "regwatch", "-R", registry.address, "--count", "3",
                              "--ready", str(ready)],
                             env={"GERYON_HOME": str(home), "PATH": "/usr/bin:/bin"},
                             stdout=subprocess.PIPE, text=True)
    wait_for(lambda: ready.exists() or watch.poll() is not None, 20, what="regwatch to watch")

    async def changes(client):
        f = await client.open("/new", "w")
        await f.write("w1 svc x")
        await f.write("load 3")
        await f.close()

    asyncio.run(session(home, registry.address, changes))
    out, _ = watch.communicate(timeout=20)
    assert out.splitlines() == ["1 add w1 svc x", "2 update w1 svc x load 3", "3 remove w1"]


def test_join_with_a_token(home, registry, tmp_path):
    token = geryon(home, "ca", "token", "--roles", "worker,cpu", check=True).stdout.strip()
    node = tmp_path / "node"
    joined = geryon(node, "join", token, registry.address, "--name", "node7", check=True)
    assert "as node7 with roles worker, cpu" in joined.stdout
    # after joining, no flags are needed
    assert geryon(node, "regquery", check=True).returncode == 0
    # the token works once
    again = geryon(tmp_path / "node2", "join", token, registry.address, "--name", "node8")
    assert again.returncode == 1
    assert "join token already used (by node7)" in again.stderr
    # a name that is taken is refused, and the token stays good for another name
    token = geryon(home, "ca", "token", check=True).stdout.strip()
    taken = geryon(tmp_path / "node3", "join", token, registry.address, "--name", "admin-1")
    assert taken.returncode == 1 and "identity 'admin-1' is taken" in taken.stderr
    geryon(tmp_path / "node3", "join", token, registry.address, "--name", "node9", check=True)
    # the joined node's certificate works with OpenSSH, as node7
    result = sftp(node, registry.port, "node7", "ls\n")
    assert result.returncode == 0, result.stderr


def test_identity_is_the_certificates_first_principal_not_the_login_name(home, registry, tmp_path):
    bob = member_home(home, tmp_path / "bob", "bob", "submit,worker")
    # bob logs in with OpenSSH as the user "worker" (a principal of his certificate) ...
    result = sftp(bob, registry.port, "worker", "ls\n")
    assert result.returncode == 0, result.stderr
    asyncio.run(write_new(bob, registry.address, "bobs a 1 persist 1"))

    async def owner_of(client):
        return await client.read("/bobs")

    # ... and whatever he logs in as, what he makes is owned by "bob"
    carol = member_home(home, tmp_path / "carol", "carol", "worker")
    from geryon.ns.client import RemoteError

    async def as_carol(client):
        with pytest.raises(RemoteError, match="belongs to bob, not carol"):
            await client.write("/bobs", "a 2")

    asyncio.run(session(carol, registry.address, as_carol))


def test_a_new_file_never_touches_an_entry_it_did_not_make(home, registry, tmp_path):
    from geryon.ns.client import RemoteError
    alice = member_home(home, tmp_path / "alice", "alice", "worker")
    bob = member_home(home, tmp_path / "bob", "bob", "worker")

    async def scenario():
        from geryon.ns.ca import Identity
        from geryon.ns.client import Client
        a = await Client.connect(registry.address, Identity(alice))
        b = await Client.connect(registry.address, Identity(bob))
        admin = await Client.connect(registry.address, Identity(home))
        held = await a.open("/new", "w")
        await held.write("x svc a")
        await (await admin.main()).remove("/x")  # the admin removes alice's live entry
        mine = await b.open("/new", "w")
        await mine.write("x svc b")  # bob registers the name again
        with pytest.raises(RemoteError, match="the entry this file made was removed"):
            await held.write("svc hijacked")
        await held.close()  # alice's close must not remove bob's entry
        index = await admin.read("/index")
        for c in (a, b, admin):
            await c.close()
        return index

    assert asyncio.run(scenario()) == b"x svc b\n"


def test_ssh_exec_on_the_registry_is_refused_plainly(home, registry):
    result = subprocess.run(["ssh", *ssh_options(home), "-p", str(registry.port),
                             "admin-1@127.0.0.1", "ls"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "this server runs no commands; use sftp" in result.stderr


def test_listening_on_any_address_is_one_port_for_ipv4_and_ipv6(home, tmp_path):
    registry = start_registry(home, host="*")
    try:
        assert registry.port > 0
        for host in ("127.0.0.1", "::1"):
            result = geryon(home, "regquery", "-R", f"tcp!{host}!{registry.port}")
            assert result.returncode == 0, result.stderr
    finally:
        registry.stop()


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def test_one_worker_cannot_grow_the_registrys_memory_past_its_limits(home, tmp_path):
    """The attack of issue 6: one worker certificate grew one entry towards 2 MB and
    updated it 1,500 times (47 MB -> 2.9 GB).  Now each step is refused at its limit, and
    the registry's memory grows by no more than the limits allow."""
    from geryon.ns.client import RemoteError
    identity_limit, history_limit = 8 << 20, 4 << 20  # the history's default
    with open(home / "config", "a") as config:
        config.write(f'registry_identity_bytes = "{identity_limit}"\n')
    registry = start_registry(home)
    worker = member_home(home, tmp_path / "w", "w1", "worker")
    refused = {}

    async def attack(client):
        await client.write("/find", "svc *", read_back=True)  # warm every code path once
        await write_new_on(client, "warm a 1")
        before = rss_kib(registry.proc.pid)
        f = await client.open("/new", "w")
        await f.write("victim pad0 " + "x" * 8000)
        for i in range(1, 250):  # grow it a pair of 8 kB at a time, towards 2 MB
            try:
                await f.write(f"pad{i} " + "x" * 8000)
            except RemoteError as err:
                refused["grow"] = (i, str(err))
                break
        for i in range(1500):  # 1,500 updates, each remembered for event readers
            data = f"pad0 {i:08000}"
            await (f.write(data) if i % 2 else client.write("/victim", data))
        for i in range(2000):  # then as many more entries as it may hold
            try:
                await write_new_on(client, f"more{i} persist 1 pad {'y' * 16000}")
            except RemoteError as err:
                refused["hold"] = (i, str(err))
                break
        with pytest.raises(RemoteError, match="pairs is 300; the limit is 256 .setting "
                           "registry_pairs;"):
            await write_new_on(client, "many " + " ".join(f"a{i} v" for i in range(300)))
        after = rss_kib(registry.proc.pid)
        index = await client.read("/index")
        await f.close()
        return before, after, index

    try:
        before, after, index = asyncio.run(session(worker, registry.address, attack))
        i, message = refused["grow"]
        assert i == 2 and ("update of victim: victim's line is 24024 bytes; the limit is 16384 "
                           "(setting registry_line_bytes;" in message)
        i, message = refused["hold"]
        assert 200 < i < 500, i
        assert ("the registry memory w1's entries take is" in message and
                f"the limit is {identity_limit} (setting registry_identity_bytes;" in message)
        assert index.count(b"\n") == 1 + i  # the victim and the entries it could hold
        grown = (after - before) * 1024
        assert grown < identity_limit + history_limit + (8 << 20), \
            f"the registry grew by {grown >> 20} MiB ({before >> 10} -> {after >> 10} MiB)"
        # and it still serves everyone else
        assert regquery(home, registry, "pad", "*").count("\n") == i
    finally:
        registry.stop()


async def write_new_on(client, line):
    f = await client.open("/new", "w")
    try:
        await f.write(line)
    finally:
        await f.close()
