"""refresh: make the registry's disk entries agree with ndb/cluster and the live chunks.

caerwyn's refresh, made idempotent and complete.  plan.plan() decides, from the ndb
file's disks and the registry's services, what to add, update, replace and remove; a
Refresher reads both, applies the plan and notes disks whose master no node serves.
watch() does it on every change, and follow() keeps watching across registry restarts.
A chunk the ndb file names as a replica but that does not follow its master is told to
(`replicate MASTER 0`, which answers at once): so a master demoted by `disks promote`
becomes its successor's replica when its node serves it again.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from geryon.disks.cluster import Naming, named_disks, services
from geryon.disks.errors import RefreshError
from geryon.disks.names import unserved
from geryon.disks.plan import Action, cpu_disks_to_name, plan, unfollowing
from geryon.errors import GeryonError
from geryon.ndb.database import Database
from geryon.registry.lines import format_pairs, format_service
from geryon.retry import Grace, Reconnect

log = logging.getLogger("geryon.refresh")

GRACE = 3.0  # seconds after dialling the registry before refresh --watch removes entries
ROUNDS = 3  # plans tried when another refresher's changes make actions fail


@dataclass
class Refreshed:
    """What one refresh did, and the disks it could not offer because their master names
    a node or chunk that nothing serves (one message each)."""

    actions: list[Action] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)


class Refresher:
    """Applies plans to a registry through a connected geryon.ns.client.Client."""

    def __init__(self, client, ndb_path: str | Path):
        self.client = client
        self.db = Database(ndb_path)

    async def refresh(self, remove: bool = True) -> Refreshed:
        """Bring the registry in line once; return what was done.  Output chunks of cpu
        nodes that the ndb file does not name yet are named dN.cpu in it first.

        Another refresher (a `refresh --watch` beside a `load`) may make the same change
        first, so an action that fails is planned again from what the registry then
        holds, a few times, before refresh gives up saying which disks it could not set."""
        done = Refreshed()
        for _ in range(ROUNDS):
            now = await services(self.client)
            disks = self._named(now)
            done.unserved = unserved(disks, now)
            failed = []
            for action in plan(disks, now, remove):
                try:
                    await self.apply(action)
                    done.actions.append(action)
                except GeryonError as err:
                    failed.append(f"disk {action.name}: {err}")
            if not failed:
                await self.tell_to_follow(disks, now)
                return done
        raise RefreshError("; ".join(failed))

    async def tell_to_follow(self, disks, now) -> None:
        from geryon.ns.client import Client
        for addr, master in unfollowing(disks, now):
            try:
                async with await Client.connect(addr) as chunk:
                    done = await chunk.run(f"replicate {master} 0")
                log.info("told %s to follow %s: %s", addr, master,
                         (done.stdout or done.stderr).decode(errors="replace").strip())
            except GeryonError as err:  # the next refresh tries again
                log.warning("could not tell %s to follow %s: %s", addr, master, err)

    def _named(self, now) -> list:
        """The ndb file's disks, after naming the cpu disks it lacks."""
        disks = named_disks(self.db)
        new = cpu_disks_to_name(disks, now)
        if not new:
            if not Path(self.db.path).exists():
                raise RefreshError(f"ndb file {self.db.path} does not exist; make it, or "
                                   "give --ndb FILE")
            return disks
        naming = Naming(self.db.path)
        for target in new:
            naming.name(target)
            log.info("named %s (%s!%s) in %s", target.name, target.host, target.chunk,
                     self.db.path)
        return named_disks(self.db)

    async def apply(self, action: Action) -> None:
        if action.op in ("remove", "replace"):
            await self.client.remove(f"/{action.name}")
        if action.op in ("add", "replace"):
            await self.client.write("/new", format_service(action.name, dict(action.attrs)))
        elif action.op == "update":
            await self.client.write(f"/{action.name}", format_pairs(action.attrs))
        log.info("%s", action)

    async def watch(self, interval: float = 0.5, on_done=None, grace: float = GRACE,
                    on_first=None) -> None:
        """Refresh now and whenever the registry or the ndb file changes; on_done gets each
        outcome (a Refreshed, or the GeryonError that stopped it), and on_first() is called
        once the first has been handed to on_done.

        For `grace` seconds after dialling, nothing is removed: the registry may just have
        restarted, and nodes take a moment to register their chunks again."""
        from geryon.registry.client import watch
        changed = asyncio.Event()

        async def follow_registry():
            async for _ in watch(self.client):
                changed.set()  # a refresh that finds nothing to do is one cheap query

        def ndb_now():
            # The Database re-reads only files that changed, so this is a few stats; an
            # unreadable file counts as a state too (its message), refreshed into an error.
            try:
                return tuple(self.db.entries())
            except (GeryonError, OSError) as err:
                return str(err)

        follower = asyncio.ensure_future(follow_registry())
        seen = None
        removals = Grace(grace, clock=asyncio.get_running_loop().time)
        removals.start()
        deferred = False  # a refresh ran in the grace period: run one more after it
        try:
            while not follower.done():
                ndb = ndb_now()
                may_remove = removals.over()
                if changed.is_set() or ndb != seen or (deferred and may_remove):
                    changed.clear()
                    seen = ndb
                    deferred = not may_remove
                    try:
                        outcome = await self.refresh(remove=may_remove)
                    except GeryonError as err:
                        log.warning("refresh: %s", err)
                        outcome = err
                    if on_done:
                        on_done(outcome)
                    if on_first:
                        on_first()
                        on_first = None
                try:
                    await asyncio.wait_for(changed.wait(), interval)
                except asyncio.TimeoutError:
                    pass
            follower.result()  # the registry went away: say why
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)


async def follow(dial, ndb_path, on_done=None, on_lost=None, on_dialled=None) -> None:
    """Watch for ever: when the registry goes (a restart), dial it again and carry on.
    dial() returns a connected registry client; on_lost gets each loss (an error, or None
    when the connection just closed); on_dialled(n) is called once the n-th connection has
    made its first refresh."""
    dialled = 0

    async def serve(client):
        def first():
            nonlocal dialled
            dialled += 1
            if on_dialled:
                on_dialled(dialled)

        await Refresher(client, ndb_path).watch(on_done=on_done, on_first=first)

    await Reconnect(dial, serve, on_lost=on_lost, what="refresh").run()
