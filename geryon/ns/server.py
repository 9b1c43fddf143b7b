"""Start a Geryon server: an asyncssh listener that serves a tree over SFTP and, for
services that run commands, a fixed table of SSH exec commands.

Every connection authenticates with a certificate from the cluster CA; its principals give
the Caller's identity and roles.  The one exception is enrolment: a server given an
Enrolment also accepts the user `join` with a valid, unspent one-time token as password
(checked at authentication, so a forged, expired or used token gets no session at all),
and serves that connection the enrolment tree only (see geryon.ns.enrol).

Deny by default: _Session answers every connection-level request asyncssh can pass to an
SSHServer (CONNECTION_REQUESTS: forwarding of any kind, tun, tap), refusing all but
sessions, and geryon.ns.session refuses everything in a session but sftp and the server's
own commands.  SessionLimits bound sessions per connection and the handshake's time.
"""

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import asyncssh

from geryon import dial
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.limits import SessionLimits
from geryon.ns.session import GuardedChannel, ServerSession, command_words
from geryon.ns.tree import Caller, Dir
from geryon.roles import ROLES

log = logging.getLogger("geryon.ns")

JOIN_USER = "join"

# asyncssh.SSHServer's request callbacks, and what a Geryon server answers: the names
# mapped to False are refused outright (the methods below say so in code).
CONNECTION_REQUESTS = {
    "session_requested": "a session (sftp or an exec), up to max_sessions at once",
    "connection_requested": False, "server_requested": False,
    "unix_connection_requested": False, "unix_server_requested": False,
    "tun_requested": False, "tap_requested": False,
}


class _Session(asyncssh.SSHServer):
    """asyncssh's per-connection callbacks: learn the caller, note when it goes."""

    def __init__(self, server: "Server"):
        self.server = server
        self.conn = None
        self.caller: Caller | None = None
        self.grant: tuple = ()
        self.sessions = 0

    def connection_made(self, conn):
        self.conn = conn

    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return self.server.enrolment is not None

    def kbdint_auth_supported(self):
        return False

    def host_based_auth_supported(self):
        return False

    def validate_password(self, username, password):
        if username != JOIN_USER or self.server.enrolment is None:
            return False
        refusal = self.server.enrolment.refusal(password)
        if refusal:
            # The banner is the only way SSH has to say why before refusing: the joiner
            # shows it, and the connection gets no session.
            self.conn.send_auth_banner(f"join refused: {refusal}\n")
            return False
        self.grant = (password,)
        return True

    def auth_completed(self):
        peer = self.conn.get_extra_info("peername") or ("", 0)
        principals = self.conn.get_key_option("geryon-principals") or ()
        if principals:
            # The identity is the certificate's first principal, never the user name the
            # client chose: logging in as a role name must not make one that identity.
            roles = frozenset(p for p in principals[1:] if p in ROLES)
            self.caller = Caller(principals[0], roles, peer[0])
        else:  # authenticated by password: only the enrolment user gets here
            self.caller = Caller(JOIN_USER, frozenset(), peer[0], grant=self.grant)
        self.server.callers.add(self.caller)

    def session_requested(self):
        if self.sessions >= self.server.limits.max_sessions:
            log.warning("%s: refused a session: %d are open, the limit (ssh_max_sessions)",
                        self.caller.identity, self.sessions)
            return False
        chan = self.conn.create_server_channel(encoding=None)
        chan.__class__ = GuardedChannel  # the same channel, refusing what it must
        self.sessions += 1
        session = ServerSession(self.server, self.caller)
        session.on_close = self.session_closed
        return chan, session

    def session_closed(self):
        self.sessions -= 1

    # Forwarding of every kind, tun and tap: refused (asyncssh's defaults, said here).
    def connection_requested(self, *args):
        return False

    def server_requested(self, *args):
        return False

    def unix_connection_requested(self, *args):
        return False

    def unix_server_requested(self, *args):
        return False

    def tun_requested(self, *args):
        return False

    def tap_requested(self, *args):
        return False

    def connection_lost(self, exc):
        if self.caller is not None:
            self.caller.closed.set()
            self.server.callers.discard(self.caller)


# An exec command: called with the process, the caller and the command's arguments; it
# returns the exit status (None: 0).  A GeryonError or OSError it raises is written to
# stderr as `NAME: message` and gives status 1.
Command = Callable[[asyncssh.SSHServerProcess, Caller, list[str]], Awaitable[int | None]]


class Server:
    """A tree served over SSH on one address, with a fixed table of exec commands."""

    def __init__(self, root: Dir | None, identity: Identity, *, keepalive: float = 1.0,
                 commands: dict[str, Command] | None = None, enrolment=None,
                 limits: SessionLimits | None = None):
        self.root = root
        self.identity = identity
        self.keepalive = keepalive
        self.commands = dict(commands or {})
        self.enrolment = enrolment
        self.limits = limits or SessionLimits.load()
        self.callers: set[Caller] = set()
        self.listener = None
        self.port = 0

    def tree_for(self, caller: Caller) -> Dir | None:
        """The tree this caller's SFTP sessions see (None: this server serves no tree)."""
        if caller.identity == JOIN_USER and not caller.roles:
            return self.enrolment.tree(caller)
        return self.root

    async def run_command(self, process, caller: Caller) -> None:
        """Run one exec request, if it names one of this server's commands."""
        status, message = await self._command(process, caller)
        if message:
            process.stderr.write(message.encode() + b"\n")
        if not process.channel.is_closing():
            process.exit(status)

    async def _command(self, process, caller: Caller) -> tuple[int, str]:
        if not self.commands or not caller.roles:
            return 1, "this server runs no commands; use sftp"
        words = command_words(process.command or "")
        if isinstance(words, str):
            return 2, words
        if not words:
            return 2, f"no command given; this server's commands are {self.command_list()}"
        handler = self.commands.get(words[0])
        if handler is None:
            return 127, (f"{words[0][:80]}: unknown command; this server's commands are "
                         f"{self.command_list()}")
        try:
            status = await handler(process, caller, words[1:])
        except (GeryonError, OSError) as err:
            return 1, f"{words[0]}: {err}"
        return status or 0, ""

    def command_list(self) -> str:
        return ", ".join(sorted(self.commands))

    async def start(self, address: str | dial.Address = "tcp!127.0.0.1!0") -> "Server":
        """Listen on a dial string (port 0: any free port); self.port tells which."""
        addr = dial.parse(address) if isinstance(address, str) else address
        try:
            self.listener = await self._listen(addr)
        except OSError as err:
            raise GeryonError(f"cannot listen on {addr}: {err.strerror or err}; is another "
                              "server using that port, or is the address not this "
                              "machine's?") from None
        self.port = self.listener.get_port()
        log.info("serving on %s", self.port)
        return self

    async def _listen(self, addr: dial.Address):
        sock = None
        if addr.any_host:
            # One socket for IPv4 and IPv6 alike, so that '*' with port 0 is one port.
            family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
            sock = socket.create_server(("", addr.port), family=family, reuse_port=False,
                                        dualstack_ipv6=family == socket.AF_INET6)
        return await asyncssh.listen(
            None if sock else addr.host, None if sock else addr.port, sock=sock,
            server_factory=lambda: _Session(self), encoding=None, reuse_address=True,
            allow_pty=False, x11_forwarding=False, agent_forwarding=False,
            **{**self.identity.server_options(self.keepalive),
               "login_timeout": self.limits.login_timeout})

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            await self.listener.wait_closed()
            self.listener = None


async def wait_forever() -> None:
    """Park the caller until cancelled (signal handlers cancel the main task)."""
    await asyncio.Event().wait()
