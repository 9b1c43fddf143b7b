"""The cpu node's cache of disks, unpacked into plain files a block's name space binds in.

A disk's content is named by its chunk's log id and length (the log only grows, and a
compaction gives it a new id), so an entry never goes stale: a disk that changed has a new
key, and its old entry simply stops being used and ages out.  Entries are filled once (two
blocks asking for the same key at once share one fill), held while blocks use them, and
evicted least recently used first once the cache holds more than its limit in bytes.  The
counters (fills, hits, bytes filled) are how tests and the node's log tell that a second
block on the same disk fetched nothing.
"""

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("geryon.rcpu")


@dataclass
class Entry:
    key: str
    path: Path
    size: int = 0
    users: int = 0
    used_at: float = field(default_factory=time.monotonic)
    ready: asyncio.Future | None = None


@dataclass
class Counters:
    fills: int = 0
    hits: int = 0
    bytes_filled: int = 0
    evictions: int = 0


class DiskCache:
    """Disks as files under `root`, at most about `limit` bytes of them."""

    def __init__(self, root: Path, limit: int):
        self.root = Path(root)
        self.limit = limit
        self.entries: dict[str, Entry] = {}
        self.counters = Counters()
        # What an earlier run left is not known to be whole: start empty.
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)

    def clear(self) -> None:
        """Remove every entry and the cache's directory."""
        self.entries.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries.values())

    async def acquire(self, key: str, fill) -> Path:
        """The files of disk content `key`, held until release(key).  fill(path) writes
        them under a new directory and returns their size in bytes; it runs at most once
        per key while the entry lives, however many blocks ask at once."""
        entry = self.entries.get(key)
        if entry is not None:
            entry.users += 1
            entry.used_at = time.monotonic()
            try:
                await asyncio.shield(entry.ready)
            except BaseException:
                entry.users -= 1
                raise
            self.counters.hits += 1
            return entry.path
        entry = Entry(key, self.root / key.replace("/", "_"), users=1,
                      ready=asyncio.get_running_loop().create_future())
        self.entries[key] = entry
        try:
            entry.path.mkdir()
            entry.size = await fill(entry.path)
        except BaseException as err:
            del self.entries[key]
            shutil.rmtree(entry.path, ignore_errors=True)
            if isinstance(err, Exception):
                entry.ready.set_exception(err)
                entry.ready.exception()  # others may not be waiting: mark it retrieved
            else:
                entry.ready.cancel()
            raise
        entry.ready.set_result(None)
        self.counters.fills += 1
        self.counters.bytes_filled += entry.size
        log.info("cache: filled %s (%d bytes)", key, entry.size)
        self.evict()
        return entry.path

    def release(self, key: str) -> None:
        entry = self.entries.get(key)
        if entry is not None:
            entry.users -= 1
            entry.used_at = time.monotonic()
        self.evict()

    def evict(self) -> None:
        """Remove unused entries, oldest use first, until the cache is within its limit."""
        idle = sorted((e for e in self.entries.values() if e.users == 0 and e.ready.done()),
                      key=lambda e: e.used_at)
        total = self.size
        for entry in idle:
            if total <= self.limit:
                break
            del self.entries[entry.key]
            total -= entry.size
            self.counters.evictions += 1
            shutil.rmtree(entry.path, ignore_errors=True)
            log.info("cache: evicted %s", entry.key)

