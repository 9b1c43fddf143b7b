"""Start a Geryon server: an asyncssh listener that serves a tree over SFTP (and, for
services that run commands, SSH exec through a process factory).

Every connection authenticates with a certificate from the cluster CA; its principals give
the Caller's identity and roles.  The one exception is enrolment: a server given an
Enrolment also accepts the user `join` with a one-time token as password, and serves that
connection the enrolment tree only (see geryon.ns.enrol).
"""

import asyncio
import logging
import socket

import asyncssh

from geryon import dial
from geryon.errors import GeryonError
from geryon.ns.ca import ROLES, Identity
from geryon.ns.sftp import TreeSFTPServer
from geryon.ns.tree import Caller, Dir

log = logging.getLogger("geryon.ns")

JOIN_USER = "join"


class _Session(asyncssh.SSHServer):
    """asyncssh's per-connection callbacks: learn the caller, note when it goes."""

    def __init__(self, server: "Server"):
        self.server = server
        self.conn = None
        self.caller: Caller | None = None
        self.grant: tuple = ()

    def connection_made(self, conn):
        self.conn = conn

    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return self.server.enrolment is not None

    def validate_password(self, username, password):
        if username != JOIN_USER or self.server.enrolment is None:
            return False
        if not self.server.enrolment.plausible(password):
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

    def connection_lost(self, exc):
        if self.caller is not None:
            self.caller.closed.set()
            self.server.callers.discard(self.caller)


class Server:
    """A tree served over SSH on one address."""

    def __init__(self, root: Dir, identity: Identity, *, keepalive: float = 1.0,
                 process_factory=None, enrolment=None):
        self.root = root
        self.identity = identity
        self.keepalive = keepalive
        self.process_factory = process_factory
        self.enrolment = enrolment
        self.callers: set[Caller] = set()
        self.listener = None
        self.port = 0

    def _caller(self, chan) -> Caller:
        return chan.get_connection().get_owner().caller

    def _sftp(self, chan):
        caller = self._caller(chan)
        if caller.identity == JOIN_USER and not caller.roles:
            return TreeSFTPServer(chan, self.enrolment.tree(caller), caller)
        return TreeSFTPServer(chan, self.root, caller)

    async def _process(self, process):
        caller = self._caller(process.channel)
        if self.process_factory is None or not caller.roles:
            process.stderr.write(b"this server runs no commands; use sftp\n")
            process.exit(1)
            return
        await self.process_factory(process, caller)

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
            server_factory=lambda: _Session(self),
            sftp_factory=self._sftp, allow_scp=False,
            process_factory=self._process,
            encoding=None, reuse_address=True,
            **self.identity.server_options(self.keepalive))

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            await self.listener.wait_closed()
            self.listener = None


async def wait_forever() -> None:
    """Park the caller until cancelled (signal handlers cancel the main task)."""
    await asyncio.Event().wait()
