"""The cpu service of a node: command blocks arrive by SSH exec and run in private name
spaces with the disks they name (docs/cpu.md).

Theory of operation.  A request `block [--out CPUDISK] [DISK...] -- BLOCK` (geryon.rcpu.
block) from a caller with role submit or admin is run in four steps:

1. resolve: each disk's registry entry gives the chunk server that serves it now; a chunk
   this node serves is read from its own file, any other is asked over SSH for its content
   key (`image-id`: log id and length) and, unless the cache holds that key, fetched whole
   (`image-get`), checked record by record and unpacked;
2. the output disk is one of this node's own cpu chunks (the one asked for, or the first
   not among the inputs, as caerwyn's finddisk took the head of the list); its files are
   the overlay's lower layer and a fresh scratch directory its upper;
3. run: geryon.rcpu.namespace builds the name space; stdin, stdout and stderr are pumped
   between the SSH channel and the block byte for byte; the channel closing (the caller's
   Ctrl-C) or a signal from it kills the whole name space;
4. finish: a block that ended with status 0 has its upper layer committed to the chunk as
   one transaction (geryon.rcpu.commit); any other end discards it.  The caller gets the
   block's exit status, or its death by a signal, exactly.
"""

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from geryon.children import die_with_parent
from geryon.errors import GeryonError
from geryon.rcpu.block import BlockRequest
from geryon.rcpu.cache import DiskCache
from geryon.rcpu.commit import CommitError, commit
from geryon.rcpu.namespace import MOUNT_ROOT, Namespace, Overlay
from geryon.rcpu.ship import Shipments

log = logging.getLogger("geryon.rcpu")

RUNNERS = frozenset({"submit", "admin"})
GRIDRC = Path(__file__).with_name("gridrc.sh")
PUMP = 1 << 16
SIGNALS = {getattr(signal, n): n[3:] for n in dir(signal)
           if n.startswith("SIG") and not n.startswith("SIG_") and isinstance(
               getattr(signal, n), int)}


class CpuError(GeryonError):
    """A block that could not be started; nothing ran."""


@dataclass
class Stats:
    blocks: int = 0
    failed: int = 0
    running: int = 0
    fetches: int = 0  # disks fetched whole from another node


def check_namespaces() -> bool:
    """Whether this process may make mount name spaces; returns whether it needs a user
    name space to do so.  CpuError says what to enable when neither works."""
    if not Path(MOUNT_ROOT).is_dir():
        try:
            os.mkdir(MOUNT_ROOT, 0o755)
        except OSError as err:
            raise CpuError(f"the cpu service needs the directory {MOUNT_ROOT} to mount disks "
                           f"on in each block's name space, and cannot make it ({err.strerror})"
                           f": make it once as root: mkdir {MOUNT_ROOT}") from None
    unprivileged = os.geteuid() != 0
    argv = ["unshare", "--mount", "--pid", "--fork", "--mount-proc"]
    if unprivileged:
        argv += ["--user", "--map-root-user"]
    try:
        tried = subprocess.run([*argv, "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CpuError(f"cannot run unshare (util-linux) to make name spaces: {err}") from None
    if tried.returncode != 0:
        hint = ("run the node as root, or allow unprivileged user name spaces "
                "(sysctl kernel.unprivileged_userns_clone=1, and on Ubuntu "
                "kernel.apparmor_restrict_unprivileged_userns=0)" if unprivileged else
                "the kernel must allow mount and pid name spaces (CONFIG_NAMESPACES)")
        raise CpuError(f"the kernel refused a private name space for blocks "
                       f"({tried.stderr.strip() or tried.returncode}); {hint}")
    return unprivileged


def copy_prefix(chunk_file, used: int, image: Path) -> None:
    """Copy the first `used` bytes of an open chunk file (and close it): a whole log, since
    the log only grows."""
    with chunk_file as f, open(image, "wb") as out:
        left = used
        while left > 0:
            data = f.read(min(left, 1 << 22))
            if not data:
                break
            out.write(data)
            left -= len(data)


async def unpack(pool, workers: int, image: Path, dest: Path) -> int:
    """Unpack a chunk image into dest, a share of its files for each of the pool's
    processes (each lists the image, checking every record); return the bytes of files."""
    from geryon.chunkfs.extract import extract_share
    loop = asyncio.get_running_loop()
    try:
        written = await asyncio.gather(*(loop.run_in_executor(pool, extract_share, image,
                                                              dest, part, workers)
                                         for part in range(workers)))
        return sum(written)
    finally:
        image.unlink(missing_ok=True)


COMPACT_MIN = 256 << 10  # removed bytes worth a compaction when they are most of a chunk


class CpuService:
    """Runs blocks for one node (geryon.node.Node), which serves the chunks."""

    def __init__(self, node, state_dir: Path, *, cache_dir: Path, cache_limit: int,
                 rc_files: tuple[Path, ...] = (), unprivileged: bool):
        self.node = node
        self.state_dir = Path(state_dir)
        self.scratch = self.state_dir / "scratch"
        shutil.rmtree(self.scratch, ignore_errors=True)  # blocks cut off by a crash
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.cache = DiskCache(cache_dir, cache_limit)
        self.rc_files = (GRIDRC, *rc_files)
        self.unprivileged = unprivileged  # what check_namespaces() found
        self.stats = Stats()
        self.workers = max(1, min(4, os.cpu_count() or 1))
        # spawn: workers are not forked from a process with threads and an event loop, and
        # are the node's own children, so they die with it even when it is SIGKILLed
        self.pool = ProcessPoolExecutor(self.workers, initializer=die_with_parent,
                                        initargs=(signal.SIGKILL,),
                                        mp_context=multiprocessing.get_context("spawn"))
        self.registry = None
        self.servers: dict = {}  # chunk server address -> its Client, kept open
        self.shipments = Shipments()

    commands = property(lambda self: {"block": self.block})

    def tree(self):
        """The service's file tree: /ship, where a connection puts files for --ship."""
        return self.shipments.tree()

    def attrs(self) -> dict:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return {"svc": "rstyx", "host": self.node.name, "ncpu": str(os.cpu_count() or 1),
                "load": f"{load:.2f}", "blocks": str(self.stats.blocks),
                "failed": str(self.stats.failed), "running": str(self.stats.running),
                "fetches": str(self.stats.fetches),
                "cachefills": str(self.cache.counters.fills),
                "cachehits": str(self.cache.counters.hits)}

    async def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.cache.clear()  # on tmpfs it is memory: a stopped node gives it back
        for client in self.servers.values():
            await client.close()
        if self.registry is not None:
            await self.registry.close()

    # --- resolving disks -------------------------------------------------------------

    async def _registry(self):
        from geryon.registry.client import dial_registry
        if self.registry is None or self.registry.conn.is_closed():
            self.registry = await dial_registry(self.node.config, self.node.identity)
        return self.registry

    async def _lookup(self, disk: str):
        from geryon.disks.remote import lookup
        return await lookup(await self._registry(), disk)

    async def _acquire(self, disk: str) -> tuple[str, Path]:
        """(cache key, files) of a disk, held in the cache until released."""
        found = await self._lookup(disk)
        served = self.node.served(found.addr)
        if served is not None:
            return await self._local(served)
        client = await self._chunk_server(found.addr)
        ident = (await client.run("image-id", timeout=30, check=True)).stdout.split()
        if len(ident) != 2:
            raise CpuError(f"disk {disk}: its node answered image-id with {ident!r}")
        key = f"{ident[0].decode()}-{ident[1].decode()}"

        async def fetch(dest):
            self.stats.fetches += 1
            path = dest.with_name(f".image-{dest.name}")
            # straight to the file: a cpu chunk may be larger than the node would hold
            try:
                await client.run("image-get", timeout=300, check=True, stdout=path)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            log.info("fetched disk %s (%d bytes) from %s", disk, path.stat().st_size,
                     found.addr)
            return await unpack(self.pool, self.workers, path, dest)

        return key, await self.cache.acquire(key, fetch)

    async def _chunk_server(self, addr: str):
        """A connection to a chunk server, kept for the next block (asking a cached disk's
        content key then costs one exec, not an SSH handshake)."""
        from geryon.ns.client import Client
        client = self.servers.get(addr)
        if client is None or client.conn.is_closed():
            client = self.servers[addr] = await Client.connect(
                addr, self.node.identity, keepalive=self.node.keepalive)
        return client

    async def _output(self, request: BlockRequest):
        """(disk name, ServedChunk) of the output disk: this node's own cpu chunk."""
        if request.out:
            found = await self._lookup(request.out)
            served = self.node.served(found.addr)
            if served is None or not served.cpu:
                raise CpuError(f"{request.out} is not an output disk of this cpu "
                               f"({self.node.name}); name one of its .cpu disks, or none")
            return request.out, served
        from geryon.registry.client import query
        registry = await self._registry()
        for served in self.node.cpu_chunks():
            for entry in await query(registry, "addr", served.name):
                if entry.name not in request.disks:
                    return entry.name, served
        raise CpuError(f"cpu {self.node.name} has no output disk that is not an input: its "
                       "cpu chunks are not named in ndb yet (run `geryon refresh`), or "
                       "every one is named as an input")

    # --- running ----------------------------------------------------------------------

    async def block(self, process, caller, args) -> int | None:
        if not caller.may(RUNNERS):
            raise CpuError("running a block needs role submit or admin")
        request = BlockRequest.parse(args)
        held: list[str] = []
        work = self.scratch / uuid.uuid4().hex
        self.stats.running += 1
        try:
            inputs = {}
            for disk in request.disks:
                key, files = await self._acquire(disk)
                held.append(key)
                inputs[disk] = files
            out_name, out_chunk = await self._output(request)
            key, lower = await self._local(out_chunk)
            held.append(key)
            (work / "upper").mkdir(parents=True)
            (work / "work").mkdir()
            shipped, rc_files = None, self.rc_files
            shipment = self.shipments.of(caller)
            if request.ship:
                shipped = work / "client"
                shipment.write_to(shipped)
            if request.rc and shipment.write_rc(work / "gridrc.sh"):
                rc_files = (*rc_files, work / "gridrc.sh")
            shipment.files.clear()  # what was shipped is this block's: the next ships anew
            env = {"cpudisk": f"{MOUNT_ROOT}/{out_name}", "GERYON_CPU": self.node.name}
            if self.node.config.registry:  # gridrc's functions ask the registry
                env["GERYON_REGISTRY"] = self.node.config.registry
            namespace = Namespace(inputs, (out_name, Overlay(lower, work / "upper",
                                                             work / "work")),
                                  shipped, rc_files,
                                  {**env,
                                   # idx, agg and intermediate come first, as installed here
                                   "PATH": f"{Path(sys.executable).parent}:"
                                           f"{os.environ.get('PATH', os.defpath)}"})
            ended = await self._run(process, namespace, request.block)
            self.stats.blocks += 1
            if ended != ("exit", 0):
                self.stats.failed += 1
                return self._report(process, ended)
            before = out_chunk.chunk.used
            try:
                commit(out_chunk.chunk, work / "upper", out_name)
            except CommitError as err:
                self.stats.failed += 1
                process.stderr.write(f"rcpu: {err}\n".encode())
                return 1
            if out_chunk.chunk.used != before:  # the block changed its output disk
                self._compact_if_worth_it(out_chunk)
                out_chunk.changed()
            return 0
        finally:
            self.stats.running -= 1
            for key in held:
                self.cache.release(key)
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _compact_if_worth_it(served) -> None:
        """Rewrite an output chunk with its live records only, once what blocks removed (a
        finished job's intermediate files) is a quarter of its capacity, or is at least
        COMPACT_MIN and four times what is live: an append-only log would otherwise fill
        up job after job, and every node fetching the disk (a reduce reading map outputs)
        fetches the removed records too.  The rewrite costs what is live, so the second
        rule never costs more than a quarter of what it frees."""
        chunk = served.chunk
        dead, live = chunk.used - chunk.live, chunk.live
        if dead > chunk.capacity // 4 or dead >= COMPACT_MIN and live * 4 <= dead:
            freed = chunk.compact()
            log.info("compacted %s: %d bytes freed", chunk.path, freed)

    async def _local(self, served) -> tuple[str, Path]:
        """(cache key, files) of a chunk this node serves, read from its own file."""
        chunk = served.chunk
        key, used, path = f"{chunk.log_id}-{chunk.used}", chunk.used, chunk.path
        loop = asyncio.get_running_loop()

        async def fill(dest):
            # opened before anything awaits: the log the key names, even if a compaction
            # renames a new one over the path while it is copied
            log_file = open(path, "rb")
            image = dest.with_name(f".image-{dest.name}")
            await loop.run_in_executor(None, copy_prefix, log_file, used, image)
            return await unpack(self.pool, self.workers, image, dest)

        return key, await self.cache.acquire(key, fill)

    def _report(self, process, ended) -> int | None:
        how, number = ended
        if how == "signal":
            name = SIGNALS.get(number, str(number))
            process.exit_with_signal(name, False, f"killed by signal {name}")
            return None
        return number

    async def _run(self, process, namespace: Namespace, block: str) -> tuple[str, int]:
        """Run the block; pump its streams; return ('exit', N) or ('signal', N)."""
        report_r, report_w = os.pipe()
        try:
            child = await asyncio.create_subprocess_exec(
                *namespace.unshare_argv(block, self.unprivileged, report_w),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, pass_fds=(report_w,),
                cwd=str(self.state_dir), start_new_session=True)
        finally:
            os.close(report_w)
        try:
            outputs = asyncio.gather(self._pump_out(child.stdout, process.stdout),
                                     self._pump_out(child.stderr, process.stderr))
            feeder = asyncio.ensure_future(self._pump_in(process, child))
            gone = asyncio.ensure_future(process.channel.wait_closed())
            done, _ = await asyncio.wait({asyncio.ensure_future(child.wait()), gone},
                                         return_when=asyncio.FIRST_COMPLETED)
            if gone in done and child.returncode is None:
                self._kill(child)
                await child.wait()
            await outputs
            feeder.cancel()
            gone.cancel()
            report = await asyncio.get_running_loop().run_in_executor(
                None, os.read, report_r, 64)
        finally:
            os.close(report_r)
            if child.returncode is None:
                self._kill(child)
                await child.wait()
        words = report.split()
        if len(words) == 2 and words[0] in (b"exit", b"signal"):
            return words[0].decode(), int(words[1])
        # The init never reported: the name space could not be made, or it was killed.
        if child.returncode is not None and child.returncode < 0:
            return "signal", -child.returncode
        return "exit", child.returncode if child.returncode is not None else 255

    @staticmethod
    def _kill(child) -> None:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # unshare's --kill-child takes the rest
        except ProcessLookupError:
            pass

    @staticmethod
    async def _pump_out(source, sink) -> None:
        while data := await source.read(PUMP):
            try:
                sink.write(data)
                await sink.drain()
            except (asyncssh.Error, ConnectionError, BrokenPipeError):
                continue  # the caller is gone: keep draining so the block is not stuck

    async def _pump_in(self, process, child) -> None:
        try:
            while True:
                try:
                    data = await process.stdin.read(PUMP)
                except asyncssh.SignalReceived as sig:
                    log.info("block got signal %s from its caller: killing it", sig.signal)
                    self._kill(child)
                    return
                except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                    continue
                if not data:
                    break
                child.stdin.write(data)
                await child.stdin.drain()
        except (BrokenPipeError, ConnectionError):
            pass  # the block stopped reading
        finally:
            try:
                child.stdin.close()
            except (BrokenPipeError, ConnectionError):
                pass
