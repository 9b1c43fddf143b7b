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
from geryon.registry.core import Change, Registry, RegistryError

REGISTRANTS = frozenset({"admin", "cpu", "worker", "submit"})


class NewHandle(Handle):
    """An open `new`: the first write registers, later writes update, close releases;
    what each of those does to the entry is the core's business (Registry's LIFE)."""

    def __init__(self, registry: Registry, caller):
        self.registry = registry
        self.caller = caller
        self.service = None

    async def write(self, offset, data):
        if self.service is None:
            self.service = self.registry.register(data, self.caller.identity)
        else:
            self.registry.update_held(self.service, data)

    async def close(self):
        service, self.service = self.service, None
        if service is not None:
            self.registry.release(service)


class RegistryFile(File):
    """A file of the registry tree: it works on the tree's registry."""

    def __init__(self, tree: "RegistryTree"):
        self.tree = tree


class NewFile(RegistryFile):
    writers = REGISTRANTS

    async def open(self, caller, read, write):
        return NewHandle(self.tree.registry, caller)


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
            if changes is None:
                seen = self.tree.registry.seq
                return Change(seen, "reset", "", "").text().encode()
            seen = changes[-1].seq
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
            service = registry.update(self.name, data, caller.identity, "admin" in caller.roles)
            return (service.line() + "\n").encode()

        return TextHandle((service.line() + "\n").encode(), on_write if write else None)


class RegistryTree(Dir):
    """The registry's root directory."""

    writers = ANYONE  # removing an entry: ownership decides (Registry.remove)

    def __init__(self, registry: Registry):
        self.registry = registry
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
