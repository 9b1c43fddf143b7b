"""Reading the cluster's view of its disks, the ndb file's names and the registry's
services, handed to the pure functions of names and plan; and naming new disks in the ndb
file (load names the disks it fills, refresh the cpu nodes' output disks, load and
`disks replicate` their replicas; `disks promote` changes who is master)."""

import os
import re
from pathlib import Path

from geryon.disks.names import DiskState, NamedDisk, disks_of, states
from geryon.disks.plan import Target
from geryon.disks.errors import DiskError
from geryon.ndb import Entry, format_entry, parse
from geryon.ndb.database import Database
from geryon.ns.client import Client
from geryon.registry.core import Service


def named_disks(db: Database) -> list[NamedDisk]:
    """The disks the ndb database names; none when its file does not exist yet."""
    return disks_of(db.entries()) if Path(db.path).exists() else []


async def services(registry: Client, *pairs: str) -> list[Service]:
    """The registered services matching `attr value ...` (all of them with none)."""
    from geryon.registry.client import query
    return await query(registry, *pairs)


async def disk_states(registry: Client, ndb_path) -> list[DiskState]:
    """Every disk, named or registered, with its fill and state (`geryon disks`)."""
    return states(named_disks(Database(ndb_path)), await services(registry))


class Naming:
    """Appends disk entries to the ndb file (made if need be), durably, and takes back the
    last one appended while nothing else has been written after it."""

    def __init__(self, ndb_path: Path):
        self.path = Path(ndb_path)

    def name(self, target: Target, copy: bool = False) -> tuple[int, int]:
        """Append the target's entry (marked `replica` if it is a copy); return the span it
        took, for take_back."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        master = [("master", f"{target.host}!{target.chunk}")]
        with open(self.path, "a") as f:
            start = f.tell()
            f.write(("\n" if start else "") + format_entry(Entry(
                [[("name", target.name), ("kfs", "")],
                 master + ([("replica", "")] if copy else [])])))
            f.flush()
            os.fsync(f.fileno())
            return start, f.tell()

    def take_back(self, span: tuple[int, int]) -> bool:
        """Remove an entry name() appended, if the file still ends with it."""
        start, end = span
        with open(self.path, "r+") as f:
            if os.fstat(f.fileno()).st_size != end:
                return False  # someone wrote after it: leave the file alone
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
        return True

    def add_replica(self, disk: str, replica: str) -> None:
        """Add `replica=REPLICA` to disk's entry, as a line of its own after its last."""
        def change(lines, first, last):
            lines.insert(last + 1, f"\treplica={replica}")
        self._edit(disk, change)

    def set_master(self, disk: str, master: str) -> None:
        """Make disk's `master=` name another chunk (HOST!chunkN)."""
        def change(lines, first, last):
            for i in range(first, last + 1):
                new = re.sub(r"(^|\s)master=\S+", rf"\1master={master}", lines[i], count=1)
                if new != lines[i]:
                    lines[i] = new
                    return
            raise DiskError(f"disk {disk}: no master= in its entry in {self.path}")
        self._edit(disk, change)

    def _edit(self, disk: str, change) -> None:
        # The file is rewritten aside and renamed over, so a reader sees it before or after.
        text = self.path.read_text()
        lines = text.split("\n")
        entries = parse(text, str(self.path))
        starts = [e.lineno for e in entries]
        for i, entry in enumerate(entries):
            if entry.get("name") == disk and entry.has("kfs"):
                first = entry.lineno - 1
                end = (starts[i + 1] - 1 if i + 1 < len(entries) else len(lines)) - 1
                last = max(j for j in range(first, end + 1)
                           if lines[j].strip() and not lines[j].lstrip().startswith("#"))
                break
        else:
            raise DiskError(f"disk {disk} is not named in {self.path}")
        change(lines, first, last)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        with open(temp, "w") as f:
            f.write("\n".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.path)
