"""Where persistent registry entries are kept: one small interface, two backends.

Store is what the registry asks of a place to keep entries: save one, forget one, give
them all back.  MemoryStore keeps them in a dict (for tests and for a registry with no
state directory); SQLiteStore keeps them in `registry.db` and commits every change before
it returns, so a SIGKILLed registry restarts with every entry it had acknowledged.  Both
pass the one contract suite (tests/test_registry_store.py).  The Owen scheduler's queue
follows the same pattern.
"""

import sqlite3
from abc import ABC, abstractmethod
from pathlib import Path
from typing import NamedTuple

from geryon.errors import GeryonError
from geryon.registry.lines import format_pairs, parse_pairs, split


class Kept(NamedTuple):
    """One persistent entry as stored: its name, its owner and its attributes in order."""

    name: str
    owner: str
    attrs: dict


class Store(ABC):
    """A place to keep persistent entries."""

    @abstractmethod
    def save(self, entry: Kept) -> None:
        """Keep entry, replacing any entry of the same name."""

    @abstractmethod
    def forget(self, name: str) -> None:
        """Keep no entry under name (nothing happens if there is none)."""

    @abstractmethod
    def entries(self) -> list[Kept]:
        """Every entry kept, sorted by name."""

    def close(self) -> None:
        """Let go of what the store holds open."""


class MemoryStore(Store):
    """Entries kept in memory, for as long as the process lives."""

    def __init__(self):
        self.kept: dict[str, Kept] = {}

    def save(self, entry):
        self.kept[entry.name] = Kept(entry.name, entry.owner, dict(entry.attrs))

    def forget(self, name):
        self.kept.pop(name, None)

    def entries(self):
        return [Kept(e.name, e.owner, dict(e.attrs)) for _, e in sorted(self.kept.items())]


class SQLiteStore(Store):
    """Entries kept in `registry.db` in a state directory, each change committed."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "registry.db"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit
            self.db.execute("pragma journal_mode=wal")
            self.db.execute("pragma synchronous=normal")
            self.db.execute("create table if not exists service "
                            "(name text primary key, owner text not null, attrs text not null)")
        except (OSError, sqlite3.Error) as err:
            raise GeryonError(f"registry state {self.path}: {err}; give --state a directory "
                              "of its own (a damaged registry.db can be moved aside: the "
                              "persistent entries in it are then lost)") from None

    def save(self, entry):
        self.db.execute("insert or replace into service values (?, ?, ?)",
                        (entry.name, entry.owner, format_pairs(entry.attrs)))

    def forget(self, name):
        self.db.execute("delete from service where name = ?", (name,))

    def entries(self):
        rows = self.db.execute("select name, owner, attrs from service order by name")
        out = []
        for name, owner, attrs in rows.fetchall():
            what = f"{self.path}: entry {name}"
            out.append(Kept(name, owner, dict(parse_pairs(split(attrs, what), what))))
        return out

    def close(self):
        self.db.close()
