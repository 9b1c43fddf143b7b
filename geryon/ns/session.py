"""One SSH session (channel) on a Geryon server, allowing only what the server offers.

Deny by default.  A session may be the `sftp` subsystem (when the server serves a tree) or
an exec of one of the server's commands; nothing else.  Shells, pseudo-terminals, other
subsystems, environment variables, X11 and agent forwarding are refused at the request,
so the client is told "failed" and no code of ours or asyncssh's runs for them.  (TCP and
Unix forwarding, tun and tap are refused by the connection: see geryon.ns.server.)

An exec request is accepted whatever its text, up to max_command bytes, so that an unknown
command, or one whose quoting does not parse, is answered with a message on stderr and
status 127 or 2, as a shell would, instead of a bare channel failure: it never runs.
"""

import shlex

import asyncssh
from asyncssh.channel import SSHServerChannel
from asyncssh.process import SSHServerProcess

from geryon.ns.sftp import TreeSFTPServer, serve_sftp

SFTP_VERSION = 3  # what OpenSSH speaks; asyncssh's v4-6 paths (open56) are not offered


class GuardedChannel(SSHServerChannel):
    """A server channel that takes no environment variables from the client (nothing we
    run may depend on them, and each would be held in memory for the session's life)."""

    def _process_env_request(self, packet) -> bool:
        packet.get_string()
        packet.get_string()
        packet.check_end()
        return False


class ServerSession(SSHServerProcess):
    """A session of one Server: sftp on its tree, or one of its exec commands."""

    def __init__(self, server, caller):
        super().__init__(self._start_command, None, SFTP_VERSION, False)
        self.geryon_server = server
        self.caller = caller
        self.on_close = None  # the connection's count of open sessions

    def connection_lost(self, exc) -> None:
        if self.on_close is not None:
            self.on_close()
            self.on_close = None
        super().connection_lost(exc)

    # What a client may ask of a session.
    def pty_requested(self, *args) -> bool:
        return False

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return len(command.encode()) <= self.geryon_server.limits.max_command

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp" and self.geryon_server.tree_for(self.caller) is not None

    def session_started(self) -> None:
        if self._chan.get_subsystem() != "sftp":
            super().session_started()  # an exec: runs _start_command
            return
        self._chan.set_encoding(None)
        self._encoding = None
        stdin = asyncssh.SSHReader(self, self._chan)
        stdout = asyncssh.SSHWriter(self, self._chan)
        tree = TreeSFTPServer(self._chan, self.geryon_server.tree_for(self.caller),
                              self.caller, self.geryon_server.limits)
        self._conn.create_task(serve_sftp(tree, stdin, stdout, SFTP_VERSION), stdin.logger)

    async def _start_command(self, process) -> None:
        await self.geryon_server.run_command(process, self.caller)


def command_words(command: str) -> list[str] | str:
    """An exec request's words, or the reason they cannot be read."""
    try:
        return shlex.split(command)
    except ValueError as err:
        return f"cannot read the command {command[:80]!r}: {err}"
