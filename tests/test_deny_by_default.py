"""Deny by default: a Geryon server answers only what its tree and command table implement.

Every SFTP request type asyncssh's server knows, every request method of its SFTPServer,
every SSH channel and connection request is either ours or refused, and the real file
system next to the server is never touched (a canary directory is compared before and
after).  The servers run in this process on loopback port 0; OpenSSH's `sftp` and `ssh`
and raw asyncssh clients are the attackers.
"""

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import asyncssh
import pytest
from asyncssh import sftp as sftpconst
from asyncssh.packet import String
from asyncssh.sftp import SFTPServerHandler

from geryon.ns.ca import Identity
from geryon.ns.limits import SessionLimits
from geryon.ns.sftp import NOT_REQUESTS, REQUESTS, TreeSFTPServer
from geryon.ns.tree import File, Handle, StaticDir, TextFile
from support import in_process_server, make_home, member_home, ssh_options

# What a tree may be asked over SFTP; widening this is a decision, so it is spelled out.
ALLOWED = {
    sftpconst.FXP_OPEN, sftpconst.FXP_CLOSE, sftpconst.FXP_READ, sftpconst.FXP_WRITE,
    sftpconst.FXP_LSTAT, sftpconst.FXP_FSTAT, sftpconst.FXP_SETSTAT, sftpconst.FXP_FSETSTAT,
    sftpconst.FXP_OPENDIR, sftpconst.FXP_READDIR, sftpconst.FXP_REMOVE, sftpconst.FXP_MKDIR,
    sftpconst.FXP_RMDIR, sftpconst.FXP_REALPATH, sftpconst.FXP_STAT, sftpconst.FXP_RENAME,
    sftpconst.FXP_READLINK, b"posix-rename@openssh.com", b"limits@openssh.com"}
IMPLEMENTED = {"open", "close", "read", "write", "lstat", "fstat", "setstat", "fsetstat",
               "scandir", "remove", "mkdir", "rmdir", "realpath", "stat", "rename",
               "posix_rename", "readlink", "map_path", "reverse_map_path"}


class Box(File):
    """A file anyone may write; it keeps the last thing written."""

    writers = frozenset({"monitor", "worker"})

    def __init__(self):
        self.data = b""

    async def open(self, caller, read, write):
        box = self

        class BoxHandle(Handle):
            async def read(self, offset, size):
                return box.data[offset:offset + size]

            async def write(self, offset, data):
                box.data = data

        return BoxHandle()


def tree():
    return StaticDir({"note": TextFile(lambda caller: b"hello\n"), "box": Box(),
                      "sub": StaticDir({"inner": TextFile(lambda caller: b"x")})})


def snapshot(top: Path) -> dict:
    """Everything a request could change about the files under top (ctime moves with any
    change of mode, owner or links; atime is left out, since looking moves it)."""
    seen = {str(top): top.lstat().st_ctime_ns}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            seen[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
                               st.st_mtime_ns, st.st_ctime_ns)
    return seen


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    base = tmp_path_factory.mktemp("deny")
    admin = make_home(base / "admin")
    monitor = member_home(admin, base / "monitor", "watcher", "monitor")
    return admin, monitor


@pytest.fixture
def canary(tmp_path, monkeypatch):
    """Real files beside the server, and the server's working directory among them."""
    real = tmp_path / "real"
    (real / "dir").mkdir(parents=True)
    (real / "secret").write_text("do not touch\n")
    os.utime(real / "secret", (1_000_000, 1_000_000))
    monkeypatch.chdir(real)
    return real


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def monitor_sftp(homes, server):
    conn = await asyncssh.connect("127.0.0.1", server.port,
                                  **Identity(homes[1]).client_options())
    return conn, await conn.start_sftp_client()


def refused_payloads(canary: Path) -> list[bytes]:
    """Arguments that would do harm to the canary if any handler acted on them."""
    secret, link = str(canary / "secret").encode(), str(canary / "link").encode()
    return [String(secret), String(link), String(secret)]


@pytest.mark.parametrize("kind", sorted(SFTPServerHandler._packet_handlers, key=repr))
def test_every_sftp_request_type_is_the_trees_or_refused(homes, canary, kind):
    if kind in REQUESTS:
        assert kind in ALLOWED, f"{kind!r} is answered but not in the allow-list"
        return
    before = snapshot(canary)

    async def attack():
        async with in_process_server(homes[0], tree()) as server:
            conn, sftp = await monitor_sftp(homes, server)
            try:
                with pytest.raises(asyncssh.SFTPOpUnsupported):
                    await sftp._handler._make_request(kind, *refused_payloads(canary))
                assert await (await sftp.open("/note", "rb")).read() == b"hello\n"  # still serving
            finally:
                conn.close()

    run(attack())
    assert snapshot(canary) == before


def test_every_sftp_server_method_is_the_trees_or_refused(homes, canary):
    before = snapshot(canary)
    caller_tree = TreeSFTPServer.__new__(TreeSFTPServer)
    caller_tree.caller = type("C", (), {"identity": "attacker"})()
    methods = [n for n in dir(asyncssh.SFTPServer)
               if not n.startswith("_") and callable(getattr(asyncssh.SFTPServer, n))]
    assert "symlink" in methods and "link" in methods and "lsetstat" in methods
    for name in methods:
        if name in NOT_REQUESTS:
            continue
        method = getattr(TreeSFTPServer, name)
        if name in IMPLEMENTED:
            assert not getattr(method, "refused", False), name
            continue
        assert getattr(method, "refused", False), f"{name} is neither implemented nor refused"
        with pytest.raises(asyncssh.SFTPOpUnsupported):
            run(getattr(caller_tree, name)(str(canary / "secret").encode(),
                                           str(canary / "link").encode()))
    assert snapshot(canary) == before


def openssh_sftp(home: Path, port: int, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sftp", *ssh_options(home), "-P", str(port), "-b", "-",
                           "watcher@127.0.0.1"], input=script, capture_output=True, text=True,
                          timeout=30, cwd=home)


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@pytest.mark.parametrize("command", ["ln -s /note /evil", "ln /note /evil",
                                     "ln -s {canary}/secret {canary}/link",
                                     "ln {canary}/secret {canary}/hard",
                                     "chmod -h 777 /note", "chown -h 0 /note",
                                     "chown 0 /note", "df /"])
def test_openssh_sftp_attacks_are_refused(homes, canary, command):
    before = snapshot(canary)

    async def attack():
        async with in_process_server(homes[0], tree()) as server:
            result = await in_thread(openssh_sftp, homes[1], server.port,
                                     command.format(canary=canary) + "\n")
            again = await in_thread(openssh_sftp, homes[1], server.port, "ls /\n")
            return result, again

    result, again = run(attack())
    assert result.returncode != 0, result.stdout + result.stderr
    assert again.returncode == 0 and "note" in again.stdout, again.stderr
    assert snapshot(canary) == before


def test_openssh_ssh_gets_no_shell_pty_forwarding_or_agent(homes, canary):
    async def attack():
        async with in_process_server(homes[0], tree()) as server:
            base = ["ssh", *ssh_options(homes[1]), "-p", str(server.port)]
            shell = await in_thread(lambda: subprocess.run(
                [*base, "-T", "watcher@127.0.0.1"], input="", capture_output=True, text=True,
                timeout=30))
            forward = await in_thread(lambda: subprocess.run(
                [*base, "-N", "-o", "ExitOnForwardFailure=yes", "-L", "0:127.0.0.1:22",
                 "watcher@127.0.0.1"], capture_output=True, text=True, timeout=30))
            remote = await in_thread(lambda: subprocess.run(
                [*base, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22",
                 "watcher@127.0.0.1"], capture_output=True, text=True, timeout=30))
            subsystem = await in_thread(lambda: subprocess.run(
                [*base, "-s", "watcher@127.0.0.1", "netconf"], capture_output=True, text=True,
                timeout=30))
            return shell, forward, remote, subsystem

    shell, forward, remote, subsystem = run(attack())
    assert shell.returncode != 0 and "shell request failed" in shell.stderr
    assert remote.returncode != 0 and "forwarding failed" in remote.stderr.lower()
    assert subsystem.returncode != 0 and "subsystem request failed" in subsystem.stderr


def test_raw_asyncssh_channels_and_requests_are_refused(homes, canary):
    """What OpenSSH's client will not send, an asyncssh client can: each is refused."""
    before = snapshot(canary)

    async def attack():
        async with in_process_server(homes[0], tree()) as server:
            conn = await asyncssh.connect("127.0.0.1", server.port,
                                          **Identity(homes[1]).client_options())
            try:
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.open_connection("127.0.0.1", server.port)
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.open_unix_connection(str(canary / "sock"))
                with pytest.raises(asyncssh.ChannelListenError):
                    await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)
                with pytest.raises(asyncssh.ChannelListenError):
                    await conn.start_unix_server(lambda: None, str(canary / "listen"))
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.create_process(term_type="xterm")  # pty + shell
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.create_process(subsystem="netconf")
                # environment variables are refused (the exec itself then goes on)
                result = await conn.run("anything", env={"LD_PRELOAD": "/evil"},
                                        encoding=None)
                assert result.exit_status == 1
                assert b"runs no commands" in result.stderr
                sftp = await conn.start_sftp_client()  # and the connection still serves
                assert await (await sftp.open("/note", "rb")).read() == b"hello\n"
            finally:
                conn.close()

    run(attack())
    assert snapshot(canary) == before


def test_limits_on_handles_writes_reads_and_sessions(homes, canary):
    limits = SessionLimits(max_read=4, max_write=8, max_handles=3, max_sessions=2)

    async def attack():
        async with in_process_server(homes[0], tree(), limits=limits) as server:
            conn, sftp = await monitor_sftp(homes, server)
            try:
                handles = [await sftp.open("/note") for _ in range(3)]
                with pytest.raises(asyncssh.SFTPFailure, match="sftp_max_handles"):
                    await sftp.open("/note")
                await handles[0].close()
                await handles[1].close()
                box = await sftp.open("/box", "wb", block_size=0)  # room again
                with pytest.raises(asyncssh.SFTPFailure, match="the limit is 8"):
                    await box.write(b"x" * 9)
                await box.write(b"x" * 8)
                note = await sftp.open("/note", "rb", block_size=0)
                assert await note.read(100, 0) == b"hell"  # a long read is cut short
                second = await conn.start_sftp_client()
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.start_sftp_client()  # a third session: refused
                second.exit()
                await second.wait_closed()
                await asyncio.sleep(0)
                third = await conn.start_sftp_client()  # one closed: room again
                assert await (await third.open("/note", "rb", block_size=0)).read(100, 0) == b"hell"
            finally:
                conn.close()

    run(attack())


def test_exec_errors_come_back_as_messages_and_keep_the_connection(homes, canary):
    async def echo(process, caller, args):
        process.stdout.write((" ".join(args) + "\n").encode())

    async def attack():
        async with in_process_server(homes[0], tree(), commands={"echo": echo}) as server:
            conn = await asyncssh.connect("127.0.0.1", server.port,
                                          **Identity(homes[0]).client_options())
            try:
                quote = await conn.run("echo 'unbalanced", encoding=None)
                unknown = await conn.run("rm -rf /", encoding=None)
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.run("", encoding=None)  # no command: a shell, refused
                too_long = conn.run("echo " + "x" * 5000, encoding=None)
                with pytest.raises(asyncssh.ChannelOpenError):
                    await too_long
                ok = await conn.run("echo 'a b' c", encoding=None)
                return quote, unknown, ok
            finally:
                conn.close()

    quote, unknown, ok = run(attack())
    assert quote.exit_status == 2 and b"cannot read the command" in quote.stderr
    assert unknown.exit_status == 127 and b"unknown command" in unknown.stderr
    assert b"commands are echo" in unknown.stderr
    assert (ok.exit_status, ok.stdout) == (0, b"a b c\n")


def test_handshake_must_finish_in_time_and_garbage_before_the_banner_is_dropped(homes):
    limits = SessionLimits(login_timeout=1.0)

    def silent(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            banner = sock.recv(100)
            sock.settimeout(10)
            rest = b""
            while chunk := sock.recv(4096):  # b'' once the server drops us
                rest += chunk
            return banner

    def garbage(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(os.urandom(4096) + b"\r\n" * 10 + os.urandom(65536))
            sock.settimeout(10)
            try:
                while sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass  # dropped hard: as good

    async def attack():
        async with in_process_server(homes[0], tree(), limits=limits) as server:
            loop = asyncio.get_running_loop()
            start = loop.time()
            banner = await in_thread(silent, server.port)
            waited = loop.time() - start
            await in_thread(garbage, server.port)
            conn, sftp = await monitor_sftp(homes, server)  # still serving
            try:
                assert await (await sftp.open("/note", "rb")).read() == b"hello\n"
            finally:
                conn.close()
            return banner, waited

    banner, waited = run(attack())
    assert banner.startswith(b"SSH-2.0-")
    assert waited < 8  # dropped after the 1 s grace, not the default


def test_join_tokens_are_checked_at_authentication(homes, tmp_path):
    import time

    from geryon.ns.ca import CertificateAuthority
    from geryon.ns.enrol import Enrolment

    ca = CertificateAuthority(homes[0] / "ca")
    good = ca.issue_token(("worker",))
    expired = ca.issue_token(("worker",), ttl=-1)  # expired already
    used = ca.issue_token(("worker",))
    ca.redeem_token(__import__("geryon.ns.ca", fromlist=["parse_token"]).parse_token(used)[0],
                    f"spent-{time.time_ns()}")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")

    async def try_token(server, token):
        try:
            conn = await asyncssh.connect(
                "127.0.0.1", server.port, username="join", password=token,
                known_hosts=None, client_keys=None, agent_path=None, config=None,
                preferred_auth="password")
        except asyncssh.PermissionDenied:
            return None
        try:
            sftp = await conn.start_sftp_client()
            return sorted(await sftp.listdir("/"))
        finally:
            conn.close()

    async def attack():
        async with in_process_server(homes[0], tree(), enrolment=Enrolment(ca)) as server:
            return {name: await try_token(server, token) for name, token in
                    [("forged", forged), ("expired", expired), ("used", used),
                     ("garbage", "gj1-nonsense"), ("good", good)]}

    seen = run(attack())
    assert seen["forged"] is None and seen["expired"] is None and seen["used"] is None
    assert seen["garbage"] is None
    assert "join" in seen["good"] and "note" not in seen["good"]
