"""The registry's semantics, with no I/O: Inferno's registry(4) as a data structure.

A flat set of services.  Each has a name (by convention its dial address) and
attribute/value pairs, an attribute at most once.  Text is quoted with geryon.quote.  Every
change bumps a counter and is remembered (up to HISTORY changes) so an `event` reader can
be told what changed, not only that something did; a reader too far behind is told to
start again from `index`.

Ownership: the identity that made an entry owns it; only the owner (or an admin) updates or
removes it.  Whether an entry outlives its maker is the `persist` attribute's business,
read by the adapter when the `new` file closes (see geryon.registry.tree).
"""

from collections import deque
from dataclasses import dataclass

from geryon import quote
from geryon.errors import NsError, PermissionDenied

RESERVED = ("new", "index", "find", "event")
HISTORY = 4096


class RegistryError(NsError):
    """A request the registry refuses; the message starts with Inferno's error text."""


@dataclass
class Service:
    name: str
    attrs: dict
    owner: str
    _line: str = ""  # the quoted line, kept until the attributes change

    def line(self) -> str:
        if not self._line:
            self._line = quote.join([self.name, *(w for kv in self.attrs.items() for w in kv)])
        return self._line

    def changed(self) -> None:
        self._line = ""

    @property
    def persistent(self) -> bool:
        value = self.attrs.get("persist", "0")
        return value not in ("", "0")

    def matches(self, pairs: list[tuple[str, str]]) -> bool:
        for attr, value in pairs:
            have = self.attrs.get(attr)
            if have is None or (value != "*" and have != value):
                return False
        return True


@dataclass
class Change:
    """One change: op is add, update or remove; line is the service after the change
    (just the quoted name for remove)."""

    seq: int
    op: str
    name: str
    line: str

    def text(self) -> str:
        return f"{self.seq} {self.op} {self.line}\n"


def check_name(name: str) -> str:
    if any(ord(c) < 32 or c == " " or c == "/" or ord(c) == 127 for c in name):
        raise RegistryError(f"bad character in service name {name!r}; names may not hold "
                            "control characters, spaces or '/'")
    if name in RESERVED or name in ("", ".", ".."):
        raise RegistryError(f"bad service name {name!r}; it may not be empty, . or .., or "
                            f"one of {', '.join(RESERVED)}")
    return name


def parse_pairs(words: list[str], what: str) -> list[tuple[str, str]]:
    if len(words) % 2:
        raise RegistryError(f"odd attribute/value pairs in {what}: {quote.join(words)[:80]}; "
                            "give every attribute a value")
    pairs = list(zip(words[0::2], words[1::2]))
    for attr, value in pairs:
        if not attr or any(ord(c) < 32 for c in attr + value):
            raise RegistryError(f"bad attribute {attr!r} in {what}: attributes must be "
                                "non-empty and neither may hold control characters")
    return pairs


def words_of(data: bytes, what: str) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RegistryError(f"{what} is not UTF-8 text") from None
    try:
        return quote.split(text)
    except quote.QuoteError as err:
        raise RegistryError(f"{what}: {err}") from None


class Registry:
    """The set of services and the log of their changes."""

    def __init__(self):
        self.services: dict[str, Service] = {}
        self.seq = 0
        self.history: deque[Change] = deque(maxlen=HISTORY)
        self.listeners = []  # callables(change), e.g. the adapter's wake-up and store

    def _changed(self, op: str, service: Service) -> Change:
        self.seq += 1
        line = quote.quote(service.name) if op == "remove" else service.line()
        change = Change(self.seq, op, service.name, line)
        self.history.append(change)
        for listener in self.listeners:
            listener(change)
        return change

    def register(self, data: bytes, owner: str) -> Service:
        """Add a service from `name attr value ...`."""
        words = words_of(data, "registration")
        if not words:
            raise RegistryError("bad service name ''; write `name attr value ...`")
        name = check_name(words[0])
        pairs = parse_pairs(words[1:], f"registration of {name}")
        if name in self.services:
            raise RegistryError(f"duplicate service name {name}; it is registered already "
                                f"(by {self.services[name].owner})")
        service = Service(name, dict(pairs), owner)
        self.services[name] = service
        self._changed("add", service)
        return service

    def restore(self, service: Service) -> None:
        """Put back a service kept on disk (no change is announced)."""
        self.services[service.name] = service

    def check_owner(self, service: Service, caller_identity: str, is_admin: bool) -> None:
        if service.owner != caller_identity and not is_admin:
            raise PermissionDenied(f"permission denied: {service.name} belongs to "
                                   f"{service.owner}, not {caller_identity}")

    def update(self, name: str, data: bytes, identity: str, is_admin=False) -> Service:
        """Set more attributes on a service (its owner only)."""
        service = self.get(name)
        self.check_owner(service, identity, is_admin)
        pairs = parse_pairs(words_of(data, f"update of {name}"), f"update of {name}")
        before = dict(service.attrs)
        service.attrs.update(pairs)
        if service.attrs != before:
            service.changed()
            self._changed("update", service)
        return service

    def remove(self, name: str, identity: str | None = None, is_admin=False) -> Service:
        """Remove a service (identity None: the registry itself, as when a holder goes)."""
        service = self.get(name)
        if identity is not None:
            self.check_owner(service, identity, is_admin)
        del self.services[name]
        self._changed("remove", service)
        return service

    def get(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise RegistryError(f"{name}: no such service") from None

    def find(self, data: bytes) -> list[Service]:
        """Services matching a filter `attr value ...` (value * matches any value)."""
        pairs = parse_pairs(words_of(data, "find filter"), "find filter")
        return sorted((s for s in self.services.values() if s.matches(pairs)),
                      key=lambda s: s.name)

    def text(self, services) -> bytes:
        return "".join(s.line() + "\n" for s in services).encode()

    def index(self) -> bytes:
        return self.text(s for _, s in sorted(self.services.items()))

    def changes_since(self, seq: int) -> list[Change] | None:
        """Changes after seq, or None if some were forgotten (read index again)."""
        if seq >= self.seq:
            return []
        if not self.history or self.history[0].seq > seq + 1:
            return None
        start = seq + 1 - self.history[0].seq
        return list(self.history)[start:]
