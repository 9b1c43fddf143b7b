"""The registry's file tree (docs/registry.md is its manual page).

  new      write `name attr value ...` once to register; later writes add attributes;
           the entry lives while this open file does, unless `persist` is non-zero when
           it closes (then it is kept, on disk too)
  index    every service, one quoted line each
  find     write a filter `attr value ...` (value * = any), then read the matches
  event    each read waits for changes and returns lines `seq op service-line`
  <name>   one file per service: read its line; its owner writes more pairs or removes it
"""

import asyncio

from geryon.ns.tree import (ANYONE, Dir, File, Handle, MessageHandle, TextFile, TextHandle)
from geryon.registry.core import Registry, RegistryError
from geryon.registry.store import Store

REGISTRANTS = frozenset({"admin", "cpu", "worker", "submit"})


class NewHandle(Handle):
    """An open `new`: the first write registers, later writes update, close ends it."""

    def __init__(self, tree: "RegistryTree", caller):
        self.tree = tree
        self.caller = caller
        self.service = None

    def mine(self) -> bool:
        """Whether the entry this file made is still the one under its name (an admin may
        have removed it, and someone else registered the name since)."""
        current = self.tree.registry.services.get(self.service.name)
        return current is self.service

    async def write(self, offset, data):
        registry = self.tree.registry
        if self.service is None:
            self.service = registry.register(data, self.caller.identity)
            self.tree.held.add(self.service.name)
        elif self.mine():
            registry.update(self.service.name, data, self.caller.identity)
        else:
            raise RegistryError(f"{self.service.name}: the entry this file made was removed")

    async def close(self):
        if self.service is None or not self.mine():
            return
        name, self.service = self.service.name, None
        self.tree.held.discard(name)
        if self.tree.registry.services[name].persistent:
            self.tree.sync(name)
        else:
            self.tree.registry.remove(name)


class RegistryFile(File):
    """A file of the registry tree: it works on the tree's registry."""

    def __init__(self, tree: "RegistryTree"):
        self.tree = tree


class NewFile(RegistryFile):
    writers = REGISTRANTS

    async def open(self, caller, read, write):
        return NewHandle(self.tree, caller)


class FindFile(RegistryFile):
    writers = ANYONE

    async def open(self, caller, read, write):
        registry = self.tree.registry
        return TextHandle(registry.index,  # made only if read before a filter is written
                          on_write=lambda data: registry.text(registry.find(data)))


class EventFile(RegistryFile):
    async def open(self, caller, read, write):
        seen = self.tree.registry.seq

        async def next_message():
            nonlocal seen
            while self.tree.registry.seq <= seen:
                await self.tree.wakeup.wait()
            changes = self.tree.registry.changes_since(seen)
            seen = self.tree.registry.seq
            if changes is None:
                return f"{seen} reset\n".encode()
            return "".join(c.text() for c in changes).encode()

        return MessageHandle(caller, next_message)


class ServiceFile(RegistryFile):
    """One service's line; its owner may write pairs to it."""

    writers = ANYONE  # ownership, not role, decides (checked by Registry.update)

    def __init__(self, tree, name):
        super().__init__(tree)
        self.name = name

    def size(self, caller):
        service = self.tree.registry.services.get(self.name)
        return len(service.line()) + 1 if service else 0

    async def open(self, caller, read, write):
        registry = self.tree.registry
        service = registry.get(self.name)

        def on_write(data):
            registry.update(self.name, data, caller.identity, "admin" in caller.roles)
            self.tree.sync(self.name)
            return (registry.get(self.name).line() + "\n").encode()

        return TextHandle((service.line() + "\n").encode(), on_write if write else None)


class RegistryTree(Dir):
    """The registry's root directory."""

    writers = ANYONE  # removing an entry: ownership decides (Registry.remove)

    def __init__(self, registry: Registry, store: Store | None = None):
        self.registry = registry
        self.store = store
        self.held: set[str] = set()  # names whose `new` file is still open
        self.wakeup = asyncio.Event()
        registry.listeners.append(self._wake)
        self.fixed = {
            "new": NewFile(self),
            "index": TextFile(lambda caller: registry.index()),
            "find": FindFile(self),
            "event": EventFile(self),
        }

    def _wake(self, change):
        self.wakeup.set()
        self.wakeup = asyncio.Event()
        if change.op == "remove" and self.store is not None:
            self.store.forget(change.name)

    def sync(self, name: str) -> None:
        """Keep an unheld persistent entry on disk (and a no longer persistent one off)."""
        if self.store is not None and name not in self.held:
            self.store.sync(self.registry, name)

    def entries(self, caller):
        out = dict(self.fixed)
        for name in self.registry.services:
            out[name] = ServiceFile(self, name)
        return out

    def child(self, name, caller):
        if name in self.fixed:
            return self.fixed[name]
        if name in self.registry.services:
            return ServiceFile(self, name)
        return None

    def remove(self, name, caller):
        if name in self.fixed:
            raise RegistryError(f"bad service name {name!r}: it is one of the registry's files")
        self.registry.remove(name, caller.identity, "admin" in caller.roles)
        self.held.discard(name)
