"""A replica following its master: run by the node that holds the replica (docs/disks.md).

Theory of operation.  A replica chunk is a prefix of its master's log.  The node holding it
finds the master's chunk in the registry by its `host` and `id` (what `replicaof
HOST!chunkN` names), dials it, and first checks that it really is a prefix: the master's
`image-sum END` at the replica's end must give the replica's own log id and sum.  Then it
asks, again and again, `image-tail LOGID END WAIT`: the master answers at once with the
bytes past END when it has any, and otherwise waits up to WAIT seconds for a change, so a
change reaches the replica within a round trip, without polling.  Each record received is
checked before it is appended (Chunk.append_log).  A master whose log id is not the
replica's (it was compacted, or the replica was never filled) or whose log is shorter than
the replica's (a master that lost what it had, or a demoted master) is fetched again whole
(`image-get`), checked whole and swapped in atomically, as image-put does.

The replica's node restarting, the master's node restarting (on a new port) and the link
between them going down all end in the same place: the loop dials again with the one
backoff and checks the prefix again.  A replica killed mid-append has a torn tail, which
its next open cuts as usual; following goes on from there.
"""

import asyncio
import logging
import re

from geryon.chunkfs.errors import ChunkError
from geryon.chunkfs.image import IncomingImage
from geryon.disks.errors import DiskError
from geryon.disks.remote import run
from geryon.errors import GeryonError
from geryon.ns.client import Client
from geryon.retry import CONNECTION_ERRORS, Backoff

log = logging.getLogger("geryon.replica")

WAIT = 10.0  # seconds an image-tail waits on the master for a change
MAX_WAIT = 30.0  # the most a master lets one image-tail wait
LOG_ID = re.compile(r"[0-9a-f]{32}")
MASTER = re.compile(r"([^!\s]+)!(chunk\d+)")


def parse_master(text: str) -> tuple[str, str]:
    """`HOST!chunkN` -> (HOST, chunkN); DiskError saying how to write it otherwise."""
    match = MASTER.fullmatch(text)
    if not match:
        raise DiskError(f"{text[:80]!r} does not name a master chunk; write HOST!chunkN, as "
                        "in master=node0!chunk0")
    return match.group(1), match.group(2)


def parse_position(line: bytes, what: str) -> tuple[str, int]:
    """`LOGID END` (the header of image-tail, or image-id) -> (log id, end)."""
    words = line.decode("ascii", errors="replace").split()
    if len(words) < 2 or not LOG_ID.fullmatch(words[0]) or not words[1].isdigit():
        raise DiskError(f"{what}: answered {line[:80]!r}, not LOGID END")
    return words[0], int(words[1])


def split_tail(out: bytes) -> tuple[str, int, bytes]:
    """image-tail's answer -> (master's log id, master's end, the bytes after the header)."""
    header, newline, data = out.partition(b"\n")
    if not newline:
        raise DiskError(f"image-tail: answered {out[:80]!r} with no header line")
    log_id, end = parse_position(header, "image-tail")
    return log_id, end, data


class Follower:
    """Keeps one served replica chunk a prefix of its master, for ever (cancel to stop).

    `served` is the node's ServedChunk: its .chunk, .master ('HOST!chunkN'), .replaced(new
    chunk) and .appended(); `registry()` gives the node's registry connection or None."""

    def __init__(self, served, registry, identity, keepalive: float = 1.0, wait: float = WAIT,
                 backoff: Backoff | None = None):
        self.served = served
        self.registry = registry
        self.identity, self.keepalive, self.wait = identity, keepalive, wait
        self.backoff = backoff or Backoff(initial=0.3, factor=1.5, cap=2.0)
        self.state = "starting"
        self.master_end = None  # the master's end when last heard from
        self.synced = asyncio.Event()  # set while the replica holds all the master had

    @property
    def master(self) -> str:
        return self.served.master

    def master_live(self) -> bool:
        return self.state not in ("starting", "master down") and \
            not self.state.startswith("master unreachable")

    async def run(self) -> None:
        while True:
            try:
                addr = await self.find_master()
                if addr is None:
                    self._set_state("master down")
                else:
                    async with await Client.connect(addr, self.identity,
                                                    keepalive=self.keepalive) as master:
                        await self.follow(master)
            except CONNECTION_ERRORS as err:
                self._set_state(f"master unreachable: {err}")
            except ChunkError as err:  # a bad copy: nothing was taken; start again
                log.warning("%s: %s", self.served.id, err)
                self._set_state(f"copy refused: {err}")
            await asyncio.sleep(self.backoff.delay())

    def _set_state(self, state: str) -> None:
        if state != self.state:
            log.info("%s (replica of %s): %s", self.served.id, self.master, state)
        self.state = state
        if state != "in sync":
            self.synced.clear()

    async def find_master(self) -> str | None:
        """The master chunk's address now, from the registry; None when it is not there."""
        from geryon.registry.client import query
        registry = self.registry()
        if registry is None:
            raise DiskError("not connected to the registry")
        host, chunk = parse_master(self.master)
        found = await query(registry, "resource", "kfs", "host", host, "id", chunk)
        return found[0].name if found else None

    async def follow(self, master: Client) -> None:
        """Copy the master's log for as long as the connection lasts."""
        await self.check_prefix(master)
        self.backoff.reset()
        while True:
            chunk = self.served.chunk
            # wait on the master only once caught up: until then, the answer is at once
            wait = self.wait if self.state == "in sync" else 0
            out = await run(master, f"image-tail {chunk.log_id} {chunk.used} {wait:g}")
            log_id, end, data = split_tail(out)
            self.master_end = end
            if log_id != chunk.log_id or end < chunk.used:
                await self.fetch_whole(master)
                continue
            if data:
                if not chunk.append_log(data):
                    raise DiskError(f"image-tail from {master.address} sent {len(data)} bytes "
                                    "holding no whole record")
                self.served.appended()
            behind = end - self.served.chunk.used
            self._set_state("in sync" if behind <= 0 else f"behind by {behind} bytes")
            if behind <= 0:
                self.synced.set()

    async def check_prefix(self, master: Client) -> None:
        """Fetch the master whole unless this replica is a prefix of its log."""
        chunk = self.served.chunk
        done = await master.run(f"image-sum {chunk.used}")
        words = done.stdout.decode(errors="replace").split()
        if done.ok and words[:2] == [chunk.log_id, str(chunk.used)] and \
                words[2:3] == [chunk.log_sum()]:
            return
        if done.exit_status == 255:
            raise DiskError(f"{master.address}: image-sum was cut off")
        await self.fetch_whole(master)

    async def fetch_whole(self, master: Client) -> None:
        """Replace the replica with the master's whole log, checked whole first."""
        self._set_state("fetching the whole log")
        image = await run(master, "image-get")
        with IncomingImage(self.served.chunk, replace=True) as incoming:
            incoming.write(image)
            checked = await asyncio.to_thread(incoming.check)
            self.served.replaced(incoming.install(checked))
        log.info("%s: fetched %s's whole log (%d bytes)", self.served.id, self.master,
                 len(image))


async def wait_in_sync(follower: Follower, seconds: float) -> None:
    """Return once the follower has caught up with its master; DiskError after `seconds`."""
    try:
        await asyncio.wait_for(follower.synced.wait(), seconds)
    except (asyncio.TimeoutError, TimeoutError):
        raise GeryonError(f"not in sync with {follower.master} after {seconds:g} s: "
                          f"{follower.state}; it goes on following") from None
