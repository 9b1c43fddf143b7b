"""The real command: the CA commands, configuration, reglisten, the demo, and clear errors
(never a traceback) for ordinary mistakes."""

import os
import signal
import socket
import subprocess

import pytest

from support import GERYON, Process, env_for, geryon, start_node, wait_for


def test_ca_init_sign_token(tmp_path):
    home = tmp_path / "ca"
    out = geryon(home, "ca", "init", "--name", "alice", check=True).stdout
    assert "this machine is alice with roles admin, submit, worker, cpu, monitor" in out
    again = geryon(home, "ca", "init", "--name", "alice")
    assert again.returncode == 1 and "already exists" in again.stderr
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "bob")],
                   check=True)
    cert = geryon(home, "ca", "sign", "--user", "bob", "--roles", "submit,monitor",
                  str(tmp_path / "bob.pub"), check=True).stdout.strip()
    assert cert == str(tmp_path / "bob-cert.pub")
    shown = subprocess.run(["ssh-keygen", "-L", "-f", cert], capture_output=True,
                           text=True).stdout
    assert "Key ID: \"bob\"" in shown
    assert shown.split("Principals:")[1].split("Critical")[0].split() == \
        ["bob", "submit", "monitor"]
    (tmp_path / "junk.pub").write_text("not a key\n")
    bad = geryon(home, "ca", "sign", "--user", "carol", str(tmp_path / "junk.pub"))
    assert bad.returncode == 1 and "is not an SSH public key" in bad.stderr
    both = geryon(home, "ca", "sign", "--user", "x", "--host", "h", str(tmp_path / "bob.pub"))
    assert both.returncode == 1 and "either --user" in both.stderr
    role = geryon(home, "ca", "sign", "--user", "x", "--roles", "boss", str(tmp_path / "bob.pub"))
    assert role.returncode == 1 and "unknown role 'boss'" in role.stderr
    assert geryon(home, "ca", "token", check=True).stdout.startswith("gj1-")


def test_config_file_then_environment_then_flags(tmp_path):
    from geryon.config import Config, ConfigError
    home = tmp_path / "h"
    home.mkdir()
    (home / "config").write_text('registry = "tcp!filehost!1"\nname = "fromfile"\n')
    env = {"GERYON_HOME": str(home)}
    old = dict(os.environ)
    try:
        os.environ.update(env)
        assert Config.load().registry == "tcp!filehost!1"
        os.environ["GERYON_REGISTRY"] = "tcp!envhost!2"
        assert Config.load().registry == "tcp!envhost!2"
        assert Config.load(registry="tcp!flaghost!3").registry == "tcp!flaghost!3"
        assert Config.load().name == "fromfile"
        (home / "config").write_text('colour = "blue"\n')
        with pytest.raises(ConfigError, match="unknown key 'colour'; known keys: registry"):
            Config.load()
        (home / "config").write_text('mdns = "maybe"\n')
        with pytest.raises(ConfigError, match="use one of on, off"):
            Config.load()
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_reglisten_runs_a_command_per_connection(home, registry):
    listen = Process(home, ["reglisten", "-R", registry.address, "-r", "svc", "echo",
                            "tcp!127.0.0.1!0", "--", "cat"])
    name = wait_for(lambda: geryon(home, "regquery", "-R", registry.address, "-n", "svc",
                                   "echo").stdout.strip(), what="reglisten to register")
    _, host, port = name.split("!")
    for word in (b"hello\n", b"again\n"):  # two connections, a command each
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(word)
            conn.shutdown(socket.SHUT_WR)
            assert conn.makefile("rb").read() == word
    listen.stop()
    wait_for(lambda: not geryon(home, "regquery", "-R", registry.address).stdout,
             what="the entry to go with reglisten")


def test_a_nodes_fill_is_kept_current(home, registry, tmp_path):
    import asyncio
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    start_node(home, registry.address, tmp_path / "chunks", "node0", 1)

    def used():
        line = geryon(home, "regquery", "-R", registry.address, "resource", "kfs").stdout
        return int(line.split(" used ")[1].split()[0])

    before = used()
    addr = geryon(home, "regquery", "-R", registry.address, "-n", "resource", "kfs").stdout

    async def write():
        client = await Client.connect(addr.strip(), Identity(home))
        try:
            await client.write("/f", os.urandom(50_000))
        finally:
            await client.close()

    asyncio.run(write())
    wait_for(lambda: used() > before + 50_000, what="the node to publish its new fill")


def test_a_garbage_chunk_does_not_keep_the_others_offline(home, registry, tmp_path):
    chunks = tmp_path / "chunks"
    start_node(home, registry.address, chunks, "node0", 2).stop()
    (chunks / "chunk1").write_bytes(b"this is not a chunk" * 10)
    node = start_node(home, registry.address, chunks, "node0")
    assert geryon(home, "regquery", "-R", registry.address, "-n", "resource", "kfs").stdout
    wait_for(lambda: "not serving" in node.output() and "chunk1" in node.output(),
             what="the node to say which chunk it left out")


def test_the_demo_runs_and_cleans_up(tmp_path):
    import os
    work = tmp_path / "demo"
    result = subprocess.run([GERYON, "demo", "--dir", str(work)], env=env_for(tmp_path),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("geryon regquery", "geryon load --app mbox --replicas 1 corpus", "live",
                 "in sync", "rcpu -v '{ls /n}' d0.mbox", "same as the local pipeline",
                 "same answer as before: yes", "md5sum of the line", "open http://127.0.0.1:",
                 "sftp> ls"):
        assert step in result.stdout, step
    left = []  # anything still running with a file of the demo's open, or in its argv
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                named = str(work).encode() in f.read()
            held = any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(work))
                       for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        if named or held:
            left.append(pid)
    assert not left, f"processes left behind: {left}"


@pytest.mark.parametrize("args,message", [
    (["registry", "-a", "tcp!127.0.0.1!{busy}"], "cannot listen on tcp!127.0.0.1!{busy}"),
    (["registry", "-a", "tcp!h!\u00b2"], "unknown service"),
    (["registry", "--state", "{file}"], "registry state"),
    (["reglisten", "tcp!127.0.0.1!{busy}", "--", "cat"], "cannot listen on"),
    (["regquery", "-R", "tcp!127.0.0.1!{free}"], "connection refused"),
    (["ls", "-R", "tcp!127.0.0.1!{free}", "d0.x"], "connection refused"),
])
def test_ordinary_mistakes_give_a_message_not_a_traceback(home, registry, tmp_path, args,
                                                         message):
    busy = registry.port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    (tmp_path / "afile").write_text("x")
    fill = {"busy": busy, "free": free, "file": tmp_path / "afile"}
    args = [a.format(**fill) for a in args]
    result = geryon(home, *args, GERYON_REGISTRY=registry.address)
    assert result.returncode == 1, result
    assert message.format(**fill) in result.stderr
    assert "Traceback" not in result.stderr


def test_get_into_a_file_says_so(home, registry, tmp_path):
    start_node(home, registry.address, tmp_path / "chunks", "node0", 2)
    ndb = tmp_path / "ndb"
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "f").write_text("hello\n")
    env = {"GERYON_REGISTRY": registry.address, "GERYON_NDB": str(ndb)}
    geryon(home, "load", "--app", "t", str(corpus), check=True, **env)
    (tmp_path / "plain").write_text("x")
    result = geryon(home, "get", "d0.t", str(tmp_path / "plain" / "under"), **env)
    assert result.returncode == 1 and "cannot write under" in result.stderr
    assert "Traceback" not in result.stderr
    assert ndb.read_text().startswith("name=d0.t kfs\n")


def test_interrupted_commands_exit_130_without_a_traceback(home, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers: the command waits
    silent.settimeout(20)
    try:
        proc = subprocess.Popen([GERYON, "regquery", "-R",
                                 f"tcp!127.0.0.1!{silent.getsockname()[1]}"],
                                env=env_for(home), stderr=subprocess.PIPE, text=True)
        conn, _ = silent.accept()  # it dials only once its signal handlers are in place
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        conn.close()
        assert proc.returncode == 130
        assert "Traceback" not in err
    finally:
        silent.close()


def test_daemons_stop_cleanly_on_sigterm(home, registry):
    import asyncio
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    watch = Process(home, ["regwatch", "-R", registry.address])
    made = []

    def watching():  # a change made before it opened `event` is not shown: make another
        async def make():
            async with await Client.connect(registry.address, Identity(home)) as client:
                await client.write("/new", f"probe{len(made)} persist 1")
        made.append(asyncio.run(make()))
        return " add probe" in watch.output()

    wait_for(watching, interval=0.2, what="regwatch to be watching")
    watch.proc.send_signal(signal.SIGTERM)
    assert watch.proc.wait(10) == 0
    assert "Traceback" not in watch.output()
