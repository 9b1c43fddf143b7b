"""Dial a Geryon server and use its tree: the client side of geryon.ns.

One SSH connection carries many SFTP sessions.  Plain reads and writes share one session;
a file whose reads wait (`event`, Owen's `task`) is opened on a session of its own, since
the server answers each session's requests in order (see ARCHITECTURE.md).
"""

import asyncio
import logging
import os
from dataclasses import dataclass

import asyncssh
from asyncssh.sftp import FILEXFER_TYPE_DIRECTORY

from geryon import dial
from geryon.errors import GeryonError
from geryon.ns.ca import Identity

log = logging.getLogger("geryon.ns")

READ_SIZE = 32768


class RemoteError(GeryonError):
    """The server refused a request, or could not be reached."""


def explain(err: Exception, what: str) -> RemoteError:
    """Turn an asyncssh or OS error into one that says what failed and what to do."""
    if isinstance(err, asyncssh.SFTPError):
        return RemoteError(f"{what}: {err.reason}")
    if isinstance(err, asyncssh.HostKeyNotVerifiable):
        return RemoteError(f"{what}: the server's host certificate is not from this cluster's "
                           "CA (or not for this host name); check the address, or rejoin")
    if isinstance(err, asyncssh.PermissionDenied):
        return RemoteError(f"{what}: our certificate was refused; is it signed by this "
                           "cluster's CA and still valid? (`geryon join` gets a new one)")
    if isinstance(err, (ConnectionRefusedError,)):
        return RemoteError(f"{what}: connection refused; is the server running there?")
    if isinstance(err, (asyncio.TimeoutError, TimeoutError)):
        return RemoteError(f"{what}: no answer in time; is the host up, and is that the "
                           "right port?")
    if isinstance(err, (OSError, asyncssh.Error, asyncio.TimeoutError)):
        return RemoteError(f"{what}: {err.__class__.__name__}: {err}".rstrip(": "))
    return RemoteError(f"{what}: {err}")


class RunTimeout(RemoteError, TimeoutError):
    """A remote command did not finish in time (our error, and a TimeoutError)."""


@dataclass
class CompletedRun:
    """What a remote command did: as asyncssh's run and subprocess.run give it."""

    address: str
    command: str
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self) -> "CompletedRun":
        """Self if the command succeeded, else RemoteError with what it said on stderr."""
        if not self.ok:
            said = self.stderr.decode(errors="replace").strip()
            raise RemoteError(f"{self.address}: {self.command} failed (status "
                              f"{self.exit_status}){': ' + said if said else ''}")
        return self


def is_dir(attrs: asyncssh.SFTPAttrs) -> bool:
    """Whether SFTP attributes describe a directory."""
    return attrs.type == FILEXFER_TYPE_DIRECTORY


class Client:
    """An authenticated SSH connection to one server, with helpers for its tree."""

    def __init__(self, conn, address: dial.Address):
        self.conn = conn
        self.address = address
        self._main = None

    @classmethod
    async def connect(cls, address, identity: Identity | None = None, *, keepalive=1.0,
                      timeout=10.0, **options) -> "Client":
        """Dial a server with our certificate (or the given asyncssh options)."""
        addr = dial.parse(address) if isinstance(address, str) else address
        if addr.any_host:
            raise RemoteError(f"cannot dial {addr}: '*' means any local address; name a host")
        if not options:
            options = (identity or Identity.load()).client_options(keepalive)
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(addr.host, addr.port, **options), timeout)
        except Exception as err:
            raise explain(err, f"dial {addr}") from None
        return cls(conn, addr)

    @property
    def local_host(self) -> str:
        """Our address as the server sees us (the name to register services under)."""
        return self.conn.get_extra_info("sockname")[0]

    async def session(self):
        """A new SFTP session on this connection (for a file whose reads wait)."""
        try:
            return await self.conn.start_sftp_client()
        except Exception as err:
            raise explain(err, f"{self.address}: start sftp") from None

    async def main(self):
        if self._main is None:
            self._main = await self.session()
        return self._main

    async def open(self, path: str, mode: str = "r", *, wait: bool = False) -> "RemoteFile":
        """Open a file; wait=True gives it a session of its own."""
        sftp = await self.session() if wait else await self.main()
        try:
            # block_size=0: one read or write is one request, so a message is never split
            # and a read of a message file never waits on a second message.
            f = await sftp.open(path, mode + "b" if "b" not in mode else mode, block_size=0)
        except Exception as err:
            if wait:
                sftp.exit()
            raise explain(err, f"{self.address}: open {path}") from None
        return RemoteFile(f, path, self.address, sftp if wait else None)

    async def read(self, path: str) -> bytes:
        """The whole content of a file."""
        f = await self.open(path, "r")
        try:
            return await f.read_all()
        finally:
            await f.close()

    async def write(self, path: str, data: bytes | str, *, read_back: bool = False):
        """Open a file, write data as one message, and (optionally) read the answer."""
        f = await self.open(path, "r+" if read_back else "w")
        try:
            await f.write(data)
            if not read_back:
                return None
            f.offset = 0  # the answer replaces the file's content: read it from the start
            return await f.read_all()
        finally:
            await f.close()

    async def ls(self, path: str = "/") -> list[str]:
        return [name for name, _ in await self.listdir(path)]

    async def listdir(self, path: str = "/") -> list[tuple[str, asyncssh.SFTPAttrs]]:
        """(name, attributes) of what a directory holds, sorted by name."""
        sftp = await self.main()
        try:
            names = await sftp.readdir(path)
        except Exception as err:
            raise explain(err, f"{self.address}: ls {path}") from None
        return sorted(((n.filename, n.attrs) for n in names
                       if n.filename not in (".", "..")), key=lambda pair: pair[0])

    async def stat(self, path: str) -> asyncssh.SFTPAttrs:
        sftp = await self.main()
        try:
            return await sftp.stat(path)
        except Exception as err:
            raise explain(err, f"{self.address}: stat {path}") from None

    async def remove(self, path: str) -> None:
        sftp = await self.main()
        try:
            await sftp.remove(path)
        except Exception as err:
            raise explain(err, f"{self.address}: remove {path}") from None

    async def run(self, command: str, *, input: bytes | None = None,
                  timeout: float | None = None, check: bool = False,
                  stdout=None) -> CompletedRun:
        """Run a command by SSH exec and return what it did; raise RemoteError only when
        asked (check) or when it could not run, RunTimeout when it passed timeout.  With
        stdout (a file's path), what the command writes goes there as it comes, not into
        memory, and the CompletedRun's stdout is empty."""
        redirect = {} if stdout is None else {"stdout": os.fspath(stdout)}
        try:
            result = await asyncio.wait_for(
                self.conn.run(command, input=input, encoding=None, **redirect), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise RunTimeout(f"{self.address}: {command} did not finish within {timeout} s"
                             ) from None
        except Exception as err:
            raise explain(err, f"{self.address}: {command}") from None
        status = result.exit_status
        if status is None:  # ended by a signal, or the channel closed: as a shell says
            status = 128 + 9 if result.exit_signal else 255
        done = CompletedRun(str(self.address), command, status, result.stdout or b"",
                            result.stderr or b"")
        return done.check() if check else done

    async def close(self) -> None:
        self.conn.close()
        try:
            await self.conn.wait_closed()
        except Exception as err:  # closing a broken connection may itself fail; say so
            log.debug("closing %s: %s", self.address, err)

    async def wait_closed(self) -> None:
        await self.conn.wait_closed()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class RemoteFile:
    """An open file on a server, read and written in order."""

    def __init__(self, f, path, address, own_session=None):
        self.f = f
        self.path = path
        self.address = address
        self.own_session = own_session
        self.offset = 0
        self.written = False  # a close then commits what was written, so it must be answered

    async def read(self, size: int = READ_SIZE) -> bytes:
        """The next bytes (one message, for files that give messages); b'' at the end."""
        try:
            data = await self.f.read(size, self.offset)
        except Exception as err:
            raise explain(err, f"{self.address}: read {self.path}") from None
        self.offset += len(data)
        return data

    async def read_all(self) -> bytes:
        parts = []
        while data := await self.read():
            parts.append(data)
        return b"".join(parts)

    async def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.written = True
        try:
            await self.f.write(data, self.offset)
        except Exception as err:
            raise explain(err, f"{self.address}: write {self.path}") from None
        self.offset += len(data)

    async def close(self) -> None:
        """Close the file; a server that refuses the close (a disk file that did not fit,
        say) raises RemoteError, since what was written did not take."""
        if self.own_session is not None:
            # A file with a session of its own may have a read waiting on the server, and a
            # close request would queue behind it: end the session, which closes the file.
            self.own_session.exit()
            return
        try:
            await self.f.close()
        except asyncssh.SFTPError as err:
            raise explain(err, f"{self.address}: close {self.path}") from None
        except (OSError, asyncssh.Error) as err:
            if self.written:  # what was written may not have taken: say so
                raise explain(err, f"{self.address}: close {self.path} (what was written "
                                   "may not have been kept)") from None
            log.debug("close %s: %s", self.path, err)  # a reader: nothing to lose
