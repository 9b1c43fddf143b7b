"""The rcpu client: choose the next cpu round-robin, choose its output disk, run a block.

caerwyn's nextcpu took cpus from the registry's list in turn and finddisk the head of a
host's .cpu disks; we do the same, with the turn kept in a small file under $GERYON_HOME so
that it goes round across invocations, as his shell variable did within one shell.  A cpu
that cannot be reached, or whose channel fails before the block starts, is passed over for
the next; once a block has started it is never run again elsewhere (the caller decides).
"""

import asyncio
import fcntl
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import asyncssh

from geryon.config import Config, home
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError
from geryon.rcpu.block import BlockRequest, disk_name, normalise
from geryon.rcpu.ship import RC_NAME
from geryon.rcpu.streams import CallerGone, Feeder, Sink
from geryon.registry.client import dial_registry, query
from geryon.registry.core import Service

log = logging.getLogger("geryon.rcpu")

PUMP = 1 << 16


class RcpuError(GeryonError):
    """No cpu could take the block."""


@dataclass
class CompletedBlock:
    """What a block did, as a completed-process record: its status (or the signal that
    killed it), what it wrote (when captured), where it ran, and how long it took."""

    block: str
    cpu: str
    host: str
    disk: str
    exit_status: int
    exit_signal: str = ""
    stdout: bytes = b""
    stderr: bytes = b""
    started: float = 0.0
    elapsed: float = 0.0
    attempts: list[str] = field(default_factory=list)

    @property
    def returncode(self) -> int:
        """The status as a shell gives it: 128 + N for death by signal N."""
        if self.exit_signal:
            import signal
            number = getattr(signal, f"SIG{self.exit_signal}", None)
            return 128 + int(number) if number is not None else 255
        return self.exit_status

    def check(self) -> "CompletedBlock":
        if self.returncode != 0:
            how = f"signal {self.exit_signal}" if self.exit_signal else f"status {self.exit_status}"
            said = self.stderr.decode(errors="replace").strip()[-300:]
            raise RcpuError(f"block on {self.cpu} ended with {how}{': ' + said if said else ''}")
        return self


def next_turn(count: int, path=None) -> int:
    """The next cpu's place in a list of `count`, round-robin across invocations."""
    path = path or home() / "rcpu-next"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        turn = int(text) if text.isdigit() else 0
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{turn + 1}\n".encode(), 0)
        return turn % count if count else 0
    finally:
        os.close(fd)


class Rcpu:
    """Runs blocks on the cluster's cpus."""

    def __init__(self, config: Config | None = None, identity: Identity | None = None,
                 keep: bool = False):
        self.config = config or Config.load()
        self.identity = identity or Identity.load()
        self.registry: Client | None = None
        self.keep = keep  # keep idle cpu connections for the next block (the local agent)
        self.idle: dict[str, list[Client]] = {}

    async def __aenter__(self):
        await self.dial()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def dial(self) -> None:
        """(Re)dial the registry if there is no open connection to it."""
        if self.registry is None or self.registry.conn.is_closed():
            self.registry = await dial_registry(self.config, self.identity)

    async def close(self) -> None:
        for clients in self.idle.values():
            for client in clients:
                await client.close()
        self.idle.clear()
        if self.registry is not None:
            await self.registry.close()

    async def _connect(self, name: str) -> Client:
        """A connection of its own for one block: an idle kept one, or a new one (a
        connection's shipped files belong to the one block it carries at a time)."""
        while self.idle.get(name):
            client = self.idle[name].pop()
            if not client.conn.is_closed():
                return client
        return await Client.connect(name, self.identity,
                                    keepalive=float(self.config.keepalive))

    async def _done_with(self, name: str, client: Client) -> None:
        if self.keep and not client.conn.is_closed():
            self.idle.setdefault(name, []).append(client)
        else:
            await client.close()

    async def cpus(self) -> list[Service]:
        found = sorted(await query(self.registry, "svc", "rstyx"), key=lambda s: s.name)
        if not found:
            raise RcpuError("no cpu service is registered: start a node with "
                            "`geryon node --cpu`, and check `geryon regquery svc rstyx`")
        return found

    async def order(self, cpu: str = "") -> list[Service]:
        """The cpus to try, the next in turn first (or just the one asked for)."""
        cpus = await self.cpus()
        if cpu:
            chosen = [s for s in cpus if cpu in (s.name, s.attrs.get("host"))]
            if not chosen:
                raise RcpuError(f"no cpu {cpu} is registered; the cpus are "
                                f"{', '.join(s.name for s in cpus)}")
            return chosen
        turn = next_turn(len(cpus))
        return cpus[turn:] + cpus[:turn]

    async def finddisk(self, host: str, inputs) -> str:
        """The first .cpu disk of a host that is not one of the inputs ('' if none)."""
        disks = sorted(s.name for s in await query(self.registry, "host", host)
                       if s.name.endswith(".cpu") and "addr" in s.attrs)
        return next((d for d in disks if d not in inputs), "")

    async def run(self, block: str, disks=(), *, cpu: str = "", stdin=None, stdout=None,
                  stderr=None, out: str = "", ship=(), on_start=None,
                  on_stderr=None) -> CompletedBlock:
        """Run a block on the next cpu with the disks; stream its output to stdout and
        stderr (binary file objects) or capture it when they are None.  Files in `ship`
        (local paths) appear to the block under /n/client.  on_stderr(bytes), if given,
        sees the block's stderr as it comes, beside wherever it goes."""
        text = normalise(block)
        disks = tuple(disk_name(d) for d in disks)
        shipped = [(os.path.basename(p), read_shipped(p)) for p in ship]
        rc = home() / "gridrc.sh"  # the caller's own functions, sourced before the block
        has_rc = rc.exists()
        if has_rc:
            shipped.append((RC_NAME, read_shipped(rc)))
        tried = []
        for service in await self.order(cpu):
            host = service.attrs.get("host", "")
            disk = disk_name(out) if out else await self.finddisk(host, disks)
            request = BlockRequest(text, tuple(disks), disk, ship=bool(ship), rc=has_rc)
            try:
                client = await self._connect(service.name)
            except RemoteError as err:
                tried.append(f"{service.name}: {err}")
                log.info("cpu %s: %s; trying the next", service.name, err)
                continue
            try:
                try:
                    if shipped:
                        await send_shipped(client, shipped)
                    process = await client.conn.create_process(request.command(),
                                                               encoding=None)
                except (asyncssh.Error, OSError, RemoteError) as err:
                    tried.append(f"{service.name}: {err}")
                    continue
                if on_start:
                    on_start(service.name, host, disk)
                try:
                    done = await self._stream(process, stdin, stdout, stderr, on_stderr)
                except BaseException:
                    # Cancelled (the caller's Ctrl-C) or broken: the connection goes, and
                    # with it the channel, so the cpu kills the block.
                    await client.close()
                    raise
                done.block, done.cpu, done.host, done.disk = text, service.name, host, disk
                done.attempts = tried
                return done
            finally:
                await self._done_with(service.name, client)
        raise RcpuError("no cpu could take the block: " + "; ".join(tried))

    async def _stream(self, process, stdin, stdout, stderr, on_stderr=None) -> CompletedBlock:
        """Pump the block's streams: stdin from a descriptor (or none), stdout and stderr
        to descriptors (or captured when None)."""
        started = time.time()
        captured = {1: bytearray(), 2: bytearray()}
        sinks = {1: Sink(stdout) if stdout is not None else None,
                 2: Sink(stderr) if stderr is not None else None}

        async def pump(source, which):
            sink = sinks[which]
            while data := await source.read(PUMP):
                if which == 2 and on_stderr is not None:
                    on_stderr(data)
                if sink is None:
                    captured[which] += data
                else:
                    sink.write(data)
                    await sink.drain()

        feeder = None
        if stdin is None:
            process.stdin.write_eof()
        else:
            feeder = Feeder(stdin, process.stdin.write, process.stdin.write_eof,
                            process.stdin.drain)
        gone = lost = False
        try:
            await asyncio.gather(pump(process.stdout, 1), pump(process.stderr, 2))
            await process.wait_closed()
        except CallerGone:
            gone = True  # its reader went away: the block goes too, as with SIGPIPE
            process.close()
        except (asyncssh.Error, OSError) as err:
            lost = True  # the connection died mid-block: the cpu, or the way to it
            log.info("block lost: %s", err)
            said = b"rcpu: the connection to the cpu was lost during the block\n"
            if sinks[2] is None:
                captured[2] += said
            else:
                try:
                    sinks[2].write(said)
                except CallerGone:
                    pass  # nobody to tell
        finally:
            if feeder is not None:
                feeder.stop()
            for sink in sinks.values():
                if sink is not None:
                    sink.close()
        status = process.exit_status
        signal_name = process.exit_signal[0] if process.exit_signal else ""
        if gone:
            status, signal_name = None, "PIPE"
        if lost:
            status, signal_name = 255, ""
        if status is None and not signal_name:
            status = 255  # the channel closed without a status: the cpu died mid-block
        return CompletedBlock("", "", "", "", status if status is not None else -1,
                              signal_name, bytes(captured[1]), bytes(captured[2]),
                              started, time.time() - started)


def read_shipped(path) -> tuple[bytes, int]:
    """A file to ship: its bytes and mode (a script stays executable)."""
    try:
        with open(path, "rb") as f:
            return f.read(), os.fstat(f.fileno()).st_mode & 0o755
    except OSError as err:
        raise RcpuError(f"cannot ship {path}: {err.strerror}") from None


async def send_shipped(client: Client, shipped) -> None:
    """Put the files in the cpu service's /ship, on the connection the block will use."""
    sftp = await client.main()
    for name, (data, mode) in shipped:
        try:
            f = await sftp.open(f"/ship/{name}", "wb", block_size=0)
            try:
                for at in range(0, len(data), 1 << 18):
                    await f.write(data[at:at + (1 << 18)], at)
                await f.chmod(mode)
            finally:
                await f.close()
        except asyncssh.SFTPError as err:
            raise RemoteError(f"ship {name}: {err.reason}") from None


def stdin_of_caller():
    """The caller's stdin, or None when there is none to give (closed)."""
    try:
        os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return sys.stdin.fileno()
