"""Where persistent registry entries are kept: SQLite in the registry's state directory.

Every change to an entry with a non-zero `persist` is committed before the change is
acknowledged, so a SIGKILLed registry restarts with every persistent entry it had.
"""

import sqlite3
from pathlib import Path

from geryon import quote
from geryon.errors import GeryonError
from geryon.registry.core import Registry, Service


class Store:
    """Persistent services on disk."""

    def __init__(self, directory: Path):
        self.path = directory / "registry.db"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("pragma journal_mode=wal")
            self.db.execute("pragma synchronous=normal")
            self.db.execute("create table if not exists service "
                            "(name text primary key, owner text not null, attrs text not null)")
        except (OSError, sqlite3.Error) as err:
            raise GeryonError(f"registry state {self.path}: {err}; give --state a directory "
                              "of its own (a damaged registry.db can be moved aside: the "
                              "persistent entries in it are then lost)") from None

    def load(self, registry: Registry) -> int:
        """Put every kept service back into the registry; return how many."""
        rows = self.db.execute("select name, owner, attrs from service").fetchall()
        for name, owner, attrs in rows:
            words = quote.split(attrs)
            registry.restore(Service(name, dict(zip(words[0::2], words[1::2])), owner))
        return len(rows)

    def save(self, service: Service) -> None:
        attrs = quote.join(w for kv in service.attrs.items() for w in kv)
        self.db.execute("insert or replace into service values (?, ?, ?)",
                        (service.name, service.owner, attrs))

    def forget(self, name: str) -> None:
        self.db.execute("delete from service where name = ?", (name,))

    def sync(self, registry: Registry, name: str) -> None:
        """Make the disk agree with the registry about one service."""
        service = registry.services.get(name)
        if service is not None and service.persistent:
            self.save(service)
        else:
            self.forget(name)

    def close(self) -> None:
        self.db.close()
