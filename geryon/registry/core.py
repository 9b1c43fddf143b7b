"""The registry's semantics, with no I/O: Inferno's registry(4) as a data structure.

Theory of operation.  A flat set of services, each a name (by convention its dial
address) and attribute/value pairs, an attribute at most once; their text is made and read
only by geryon.registry.lines.  Every change bumps a counter and is remembered, so an
`event` reader is told what changed, not only that something did; the history is bounded
in changes and in bytes, and a reader too far behind is told to start again from `index`.

An entry's life is the table LIFE: (state, event, persistent after it) -> next state.

  made by `new`  -> held      its `new` file is open: it lives as long as that file
  held  release  -> kept      the file closed and the entry says `persist 1`: on disk
                 -> removed   ... and it does not: removed when its holder goes
  any   remove   -> removed   its owner or an admin removed it (while held, too: the
                              `new` file that made it then touches nothing more)
  kept  update   -> left      `persist 0` written: off the disk, listed until removed
  left  update   -> kept      `persist 1` written: on the disk again

The Store is told whenever an entry becomes or stops being kept, so it holds exactly the
kept entries.  The adapter (geryon.registry.tree) only passes writes and closes on.

Limits: every input is measured before it is parsed, and each refusal names the limit and
its value (the Limits table; their defaults live in geryon.config's one table).  One
identity's entries are counted together, each as the memory it takes (entry_cost), and so
is the history (change_bytes), so the memory any one client can make the registry hold is
bounded: docs/registry.md states by how much.
"""

import sys
from collections import deque
from dataclasses import dataclass

from geryon.errors import LimitExceeded, PermissionDenied
from geryon.ns.limits import refuse
from geryon.registry.index import AttributeIndex
from geryon.registry.lines import (RESERVED, Change, RegistryError, check_name,  # noqa: F401
                                   format_service, parse_pairs, parse_words, words_of)
from geryon.registry.store import Kept, MemoryStore, Store

HELD, KEPT, LEFT, REMOVED = "held", "kept", "left", "removed"
MADE, UPDATE, RELEASE, REMOVE = "made", "update", "release", "remove"

LIFE = {
    (None, MADE, False): HELD, (None, MADE, True): HELD,
    (HELD, UPDATE, False): HELD, (HELD, UPDATE, True): HELD,
    (HELD, RELEASE, False): REMOVED, (HELD, RELEASE, True): KEPT,
    (HELD, REMOVE, False): REMOVED, (HELD, REMOVE, True): REMOVED,
    (KEPT, UPDATE, False): LEFT, (KEPT, UPDATE, True): KEPT,
    (KEPT, REMOVE, False): REMOVED, (KEPT, REMOVE, True): REMOVED,
    (LEFT, UPDATE, False): LEFT, (LEFT, UPDATE, True): KEPT,
    (LEFT, REMOVE, False): REMOVED, (LEFT, REMOVE, True): REMOVED,
    # the `new` file of an entry removed by another closes: nothing more happens
    (REMOVED, RELEASE, False): REMOVED, (REMOVED, RELEASE, True): REMOVED,
}

ENTRY_COST = 768  # bytes an entry takes beside its text: its objects and its index (measured)
CHANGE_COST = 64  # bytes a remembered change takes beside its line
EVENT_MESSAGE = 256 << 10  # most bytes of changes one `event` read is given


@dataclass(frozen=True)
class Limits:
    """How much the registry takes from anyone (defaults: geryon.config.DEFAULTS)."""

    line_bytes: int
    pairs: int
    identity_bytes: int
    history: int
    history_bytes: int

    KEYS = {"line_bytes": "registry_line_bytes", "pairs": "registry_pairs",
            "identity_bytes": "registry_identity_bytes", "history": "registry_history",
            "history_bytes": "registry_history_bytes"}

    @classmethod
    def from_config(cls, config=None) -> "Limits":
        """The limits a configuration sets (None: the defaults)."""
        from geryon.config import DEFAULTS
        return cls(**{field: int(getattr(config, key) if config is not None
                                 else DEFAULTS[key][0]) for field, key in cls.KEYS.items()})

    def refuse(self, what: str, size: str, field: str, then: str = "") -> LimitExceeded:
        """The error for `what is size`, past the limit field (in the servers' words)."""
        err = refuse(what, size, getattr(self, field), self.KEYS[field])
        return RegistryLimitExceeded(f"{err}{then}")


class RegistryLimitExceeded(RegistryError, LimitExceeded):
    """An input past one of the registry's Limits."""


class Service:
    """One entry: name, attributes, owner, and where it is in its life."""

    __slots__ = ("name", "attrs", "owner", "state", "_line", "cost")

    def __init__(self, name: str, attrs: dict, owner: str = "", state: str | None = None):
        self.name, self.attrs, self.owner, self.state = name, attrs, owner, state
        self._line = ""
        self.cost = 0

    def __repr__(self):
        return f"Service({self.line()!r}, owner={self.owner!r}, state={self.state!r})"

    def __eq__(self, other):
        return (isinstance(other, Service) and (self.name, self.attrs, self.owner)
                == (other.name, other.attrs, other.owner))

    def line(self) -> str:
        if not self._line:
            self._line = format_service(self.name, self.attrs)
        return self._line

    @property
    def persistent(self) -> bool:
        return self.attrs.get("persist", "0") not in ("", "0")

    def matches(self, pairs: list[tuple[str, str]]) -> bool:
        for attr, value in pairs:
            have = self.attrs.get(attr)
            if have is None or (value != "*" and have != value):
                return False
        return True


def entry_cost(line: str) -> int:
    """The memory an entry takes, near enough: its line, as much again for the words of
    its attributes, and ENTRY_COST for the objects and index entries that hold them."""
    return ENTRY_COST + 2 * sys.getsizeof(line)


def change_bytes(change: Change) -> int:
    """The memory a remembered change takes: its line and the record of it."""
    return CHANGE_COST + sys.getsizeof(change.line)


class Registry:
    """The set of services, their life, their index and the log of their changes."""

    def __init__(self, store: Store | None = None, limits: Limits | None = None):
        self.store = store if store is not None else MemoryStore()
        self.limits = limits or Limits.from_config()
        self.services: dict[str, Service] = {}
        self.index_of = AttributeIndex()
        self.held_bytes: dict[str, int] = {}  # identity -> the cost of its entries
        self.seq = 0
        self.history: deque[Change] = deque()
        self.history_bytes = 0
        self.listeners = []  # callables(change), e.g. the adapter's wake-up
        for kept in self.store.entries():
            self._add(Service(kept.name, dict(kept.attrs), kept.owner, KEPT))

    # -- the life of an entry

    def _step(self, service: Service, event: str) -> None:
        """Move service along LIFE, and keep the store holding exactly the kept ones."""
        before = service.state
        try:
            after = LIFE[before, event, service.persistent]
        except KeyError:
            raise RegistryError(f"{service.name}: cannot {event} an entry that is "
                                f"{before or 'not made'}") from None
        service.state = after
        if after == KEPT:
            self.store.save(Kept(service.name, service.owner, service.attrs))
        elif before == KEPT:
            self.store.forget(service.name)

    def _add(self, service: Service) -> None:
        service.cost = entry_cost(service.line())
        self.services[service.name] = service
        self.index_of.add(service.name, service.attrs)
        self.held_bytes[service.owner] = self.held_bytes.get(service.owner, 0) + service.cost

    def _drop(self, service: Service) -> None:
        del self.services[service.name]
        self.index_of.discard(service.name, service.attrs)
        self.held_bytes[service.owner] -= service.cost
        if not self.held_bytes[service.owner]:
            del self.held_bytes[service.owner]

    def _changed(self, op: str, service: Service) -> Change:
        self.seq += 1
        line = format_service(service.name, {}) if op == "remove" else service.line()
        change = Change(self.seq, op, service.name, line)
        self.history.append(change)
        self.history_bytes += change_bytes(change)
        # the newest change is always kept, so a reader at the previous one never resets
        while len(self.history) > 1 and (len(self.history) > self.limits.history
                                         or self.history_bytes > self.limits.history_bytes):
            gone = self.history.popleft()
            self.history_bytes -= change_bytes(gone)
        for listener in self.listeners:
            listener(change)
        return change

    # -- limits

    def _measure(self, data: bytes, what: str) -> None:
        if len(data) > self.limits.line_bytes:
            raise self.limits.refuse(what, f"{len(data)} bytes", "line_bytes")

    def _check(self, name: str, attrs: dict, owner: str, replaces: int, what: str) -> str:
        """The line of an entry with attrs, if every limit allows it."""
        if len(attrs) > self.limits.pairs:
            raise self.limits.refuse(f"{what}: the number of {name}'s pairs", len(attrs),
                                     "pairs")
        line = format_service(name, attrs)
        size = len(line.encode())
        if size > self.limits.line_bytes:
            raise self.limits.refuse(f"{what}: {name}'s line", f"{size} bytes", "line_bytes")
        held = self.held_bytes.get(owner, 0) - replaces + entry_cost(line)
        if held > self.limits.identity_bytes:
            raise self.limits.refuse(f"{what}: the registry memory {owner}'s entries take",
                                     f"{held} bytes", "identity_bytes",
                                     f"; or remove some of {owner}'s entries first")
        return line

    # -- requests

    def register(self, data: bytes, owner: str) -> Service:
        """Add a service from `name attr value ...`; it is held by the caller's `new`."""
        self._measure(data, "registration")
        name, attrs = parse_words(words_of(data, "registration"), "registration")
        if name in self.services:
            raise RegistryError(f"duplicate service name {name}; it is registered already "
                                f"(by {self.services[name].owner})")
        line = self._check(name, attrs, owner, 0, "registration")
        service = Service(name, attrs, owner)
        service._line = line
        self._step(service, MADE)
        self._add(service)
        self._changed("add", service)
        return service

    def update_held(self, service: Service, data: bytes) -> Service:
        """A later write on the `new` file that made service: more pairs for it."""
        if service.state == REMOVED:
            raise RegistryError(f"{service.name}: the entry this file made was removed")
        return self.update(service.name, data, service.owner)

    def release(self, service: Service) -> None:
        """The `new` file that made service has closed (or its connection died)."""
        self._step(service, RELEASE)
        if service.state == REMOVED and self.services.get(service.name) is service:
            self._drop(service)
            self._changed("remove", service)

    def check_owner(self, service: Service, caller_identity: str, is_admin: bool) -> None:
        if service.owner != caller_identity and not is_admin:
            raise PermissionDenied(f"permission denied: {service.name} belongs to "
                                   f"{service.owner}, not {caller_identity}")

    def update(self, name: str, data: bytes, identity: str, is_admin=False) -> Service:
        """Set more attributes on a service (its owner or an admin only)."""
        service = self.get(name)
        self.check_owner(service, identity, is_admin)
        what = f"update of {name}"
        self._measure(data, what)
        attrs = {**service.attrs, **dict(parse_pairs(words_of(data, what), what))}
        if attrs == service.attrs:
            return service
        line = self._check(name, attrs, service.owner, service.cost, what)
        self._drop(service)
        service.attrs, service._line = attrs, line
        self._step(service, UPDATE)
        self._add(service)
        self._changed("update", service)
        return service

    def remove(self, name: str, identity: str, is_admin=False) -> Service:
        """Remove a service (its owner or an admin only), held or not."""
        service = self.get(name)
        self.check_owner(service, identity, is_admin)
        self._step(service, REMOVE)
        self._drop(service)
        self._changed("remove", service)
        return service

    def get(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise RegistryError(f"{name}: no such service") from None

    def find(self, data: bytes) -> list[Service]:
        """Services matching a filter `attr value ...` (value * matches any value)."""
        self._measure(data, "find filter")
        pairs = parse_pairs(words_of(data, "find filter"), "find filter")
        if len(pairs) > self.limits.pairs:
            raise self.limits.refuse("the number of pairs in the find filter", len(pairs),
                                     "pairs")
        if not pairs:
            return [s for _, s in sorted(self.services.items())]
        services = self.services
        found = (services[name] for name in self.index_of.candidates(pairs))
        return sorted((s for s in found if s.matches(pairs)), key=lambda s: s.name)

    def text(self, services) -> bytes:
        return "".join(s.line() + "\n" for s in services).encode()

    def index(self) -> bytes:
        return self.text(s for _, s in sorted(self.services.items()))

    def changes_since(self, seq: int, max_bytes: int = EVENT_MESSAGE) -> list[Change] | None:
        """Changes after seq, oldest first, as many as fit in max_bytes of event text (at
        least one); None if some were forgotten (read index again)."""
        if seq >= self.seq:
            return []
        if not self.history or self.history[0].seq > seq + 1:
            return None
        out, size = [], 0
        for i in range(seq + 1 - self.history[0].seq, len(self.history)):
            change = self.history[i]
            size += change_bytes(change)
            if out and size > max_bytes:
                break
            out.append(change)
        return out
