"""The monitors' clients of the trees: the scheduler's (through geryon.owen.control) and
the registry's, each dialled when first needed and again after it was lost, and a Hub
that follows the trees' blocking files and tells the pages what changed.

Theory of operation.  The server keeps nothing of its own: every page load and every
refresh reads the trees again.  What it does keep is how to reach them (one SSH
connection to each, dialled again after a failure, with the error kept to show the
page) and the followers: one read waiting on the registry's
`event`, one on the scheduler's `admin/event`, and one on `admin/N/monitor` for each job
not yet complete.  Each change they see becomes a message to the pages (`sched`,
`cluster`, or a job's monitor line); the page then asks for the trees again.
"""

import asyncio
import logging
import time

from geryon import quote
from geryon.config import Config
from geryon.disks.cluster import named_disks
from geryon.disks.names import states
from geryon.errors import GeryonError
from geryon.ndb.database import Database
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError
from geryon.owen.control import WRITE, Controller
from geryon.owen.records import header
from geryon.retry import CONNECTION_ERRORS, Backoff
from geryon.web import views

log = logging.getLogger("geryon.web")

DIAL_TIMEOUT = 5.0
DETAILED_JOBS = 50  # newest jobs whose description, why, group and duration are read


class Link:
    """How to reach one tree: a connection made on first use and again after it was
    lost, and the last error, to say plainly why the tree cannot be reached."""

    def __init__(self, what: str, dial):
        self.what, self.dial = what, dial
        self.conn: Client | None = None
        self.error: str | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self.conn is not None and not self.conn.conn.is_closed():
                return self.conn
            self.conn = None
            try:
                self.conn = await asyncio.wait_for(self.dial(), DIAL_TIMEOUT + 1)
            except (asyncio.TimeoutError, TimeoutError):
                self.error = f"{self.what}: no answer within {DIAL_TIMEOUT:.0f} s"
                raise RemoteError(self.error) from None
            except GeryonError as err:
                self.error = f"{self.what}: {err}"
                raise RemoteError(self.error) from None
            self.error = None
            return self.conn

    def lost(self, err: Exception) -> None:
        """A request failed: if the connection is gone, dial again next time."""
        if self.conn is not None and self.conn.conn.is_closed():
            self.conn = None
            self.error = f"{self.what}: connection lost ({err})"

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


class SchedTree:
    """The Owen scheduler's tree (docs/sched.md), as the monitors use it."""

    def __init__(self, config: Config, identity: Identity, sched: str = ""):
        from geryon.owen.server import sched_address

        async def dial():
            address = await sched_address(config, sched)
            return await Client.connect(address, identity, keepalive=float(config.keepalive),
                                        timeout=DIAL_TIMEOUT)

        self.link = Link("scheduler", dial)

    async def controller(self) -> Controller:
        return Controller(await self.link.client())

    async def _use(self, body):
        try:
            return await body(await self.controller())
        except CONNECTION_ERRORS as err:
            self.link.lost(err)
            raise

    async def snapshot(self, monitors: dict) -> dict:
        """Jobs (with their monitor lines where known), nodes and the global group."""
        async def body(c: Controller):
            jobs_text, nodes_text, group = await asyncio.gather(
                c.read("/admin/jobs"), c.read("/admin/nodes"), c.read("/admin/group"))
            jobs = views.parse_jobs(jobs_text)
            await asyncio.gather(*(self._details(c, job)
                                   for job in sorted(jobs, key=lambda j: -j["id"])
                                   [:DETAILED_JOBS]))
            for job in jobs:
                job["monitor"] = monitors.get(job["id"], {})
            return {"jobs": jobs, "nodes": views.parse_nodes(nodes_text),
                    "group": views.parse_group(group), "now": time.time()}
        return await self._use(body)

    async def _details(self, c: Controller, job: dict) -> None:
        base = f"/admin/{job['id']}"
        try:
            description, duration, why, group = await asyncio.gather(
                c.read(f"{base}/description"), c.read(f"{base}/duration"),
                c.read(f"{base}/why"), c.read(f"{base}/group"))
        except RemoteError as err:  # deleted between the two reads
            if c.client.conn.is_closed():
                raise
            job["why"] = str(err)
            return
        job.update(description=description.strip(), duration=views._float(duration.strip()),
                   why=why.strip(), group=views.parse_group(group))

    async def post(self, argv: list[str], uploads: list[views.Upload], description: str = "",
                   priority: str = "", start: bool = False) -> int:
        """Make a job as `geryon owen start` does, its input from the uploads; its number.
        A refused step leaves no job behind (a refused load removes it; any other step
        deletes it)."""
        async def body(c: Controller):
            clone = await c.client.open("/admin/clone", "r+")
            loaded = False
            try:
                id = int((await clone.read()).decode().strip())
                try:
                    if uploads:
                        await self._send(c, id, uploads)
                    if description:
                        await c.client.write(f"/admin/{id}/description", description)
                    await clone.write(quote.join(["load", *argv]))
                    loaded = True
                finally:
                    if not loaded:
                        await self._forget(c, id)
            finally:
                await clone.close()
            try:
                if priority:
                    await c.ctl(id, ["priority", priority])
                if start:
                    await c.ctl(id, ["start"])
            except RemoteError as err:
                raise RemoteError(f"job {id} was made, but: {err}") from None
            return id
        return await self._use(body)

    @staticmethod
    async def _send(c: Controller, id: int, uploads: list[views.Upload]) -> None:
        data = await c.client.open(f"/admin/{id}/data", "w")
        try:
            for up in uploads:
                await data.write(header(len(up.data), up.name))
                for at in range(0, len(up.data), WRITE):
                    await data.write(up.data[at:at + WRITE])
        finally:
            await data.close()

    @staticmethod
    async def _forget(c: Controller, id: int) -> None:
        try:
            await c.ctl(id, ["delete"])
        except RemoteError as err:  # the failed load removed it already
            log.debug("job %s: %s", id, err)

    async def job_ctl(self, id: int, message: str) -> None:
        async def body(c: Controller):
            await c.client.write(f"/admin/{id}/ctl", message)
        await self._use(body)

    async def admin_ctl(self, message: str) -> None:
        async def body(c: Controller):
            await c.client.write("/admin/ctl", message)
        await self._use(body)

    async def result(self, id: int):
        """admin/N/result, open for reading."""
        async def body(c: Controller):
            return await c.client.open(f"/admin/{id}/result", "r")
        return await self._use(body)

    async def close(self) -> None:
        await self.link.close()


class RegistryTree:
    """The registry's tree (docs/registry.md), and the ndb file naming the disks."""

    def __init__(self, config: Config, identity: Identity):
        from geryon.registry.client import dial_registry

        async def dial():
            return await asyncio.wait_for(dial_registry(config, identity), DIAL_TIMEOUT)

        self.config = config
        self.link = Link("registry", dial)

    async def snapshot(self) -> dict:
        """cpus, chunk servers, disks, mapreduce jobs and every entry."""
        from geryon.registry.client import query
        try:
            found = await query(await self.link.client())
        except CONNECTION_ERRORS as err:
            self.link.lost(err)
            raise
        out = {"cpus": views.cpus(found), "chunk_servers": views.chunk_servers(found),
               "mapreduce": views.mapreduce_jobs(found), "services": views.services(found),
               "disks": [], "ndb": str(self.config.ndb_path), "disks_error": None}
        try:
            named = named_disks(Database(self.config.ndb_path))
            out["disks"] = views.disks(states(named, found), found)
        except GeryonError as err:
            out["disks_error"] = str(err)
        return out

    async def close(self) -> None:
        await self.link.close()


class Hub:
    """Follows the trees from start to close, and tells each open page what changed."""

    SETTLE = 0.15  # seconds to gather a burst of changes into one message

    def __init__(self, sched: SchedTree, registry: RegistryTree):
        self.sched, self.registry = sched, registry
        self.pages: set[asyncio.Queue] = set()
        self.monitors: dict[int, dict] = {}   # the last line each job's monitor gave
        self._watching: dict[int, asyncio.Task] = {}
        self._pending: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow_sched()),
                       asyncio.create_task(self._follow_registry())]

    async def close(self) -> None:
        for task in [*self._tasks, *self._watching.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._watching.values(), return_exceptions=True)
        self._tasks, self._watching = [], {}

    def listen(self, size: int = 256) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(size)
        self.pages.add(q)
        return q

    def leave(self, q: asyncio.Queue) -> None:
        self.pages.discard(q)

    def end_pages(self) -> None:
        """Let every page's event stream end (the server is closing)."""
        for q in list(self.pages):
            self.pages.discard(q)
            if not q.full():
                q.put_nowait(("end", None))

    def changed(self, kind: str) -> None:
        """Say `kind` changed, once for a burst of changes."""
        self._pending.add(kind)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.SETTLE, self._send)

    def _send(self) -> None:
        self._flush = None
        kinds, self._pending = sorted(self._pending), set()
        for kind in kinds:
            self._put((kind, None))

    def _put(self, message) -> None:
        for q in list(self.pages):
            try:
                q.put_nowait(message)
            except asyncio.QueueFull:  # a page that stopped reading: its stream is ended,
                self.pages.discard(q)    # and the browser opens another and reads afresh

    async def _follow_sched(self) -> None:
        backoff = Backoff(initial=0.3, cap=3.0)
        while True:
            try:
                client = await self.sched.link.client()
                f = await client.open("/admin/event", "r", wait=True)
                try:
                    backoff.reset()
                    await self._watch_jobs()
                    self.changed("sched")
                    while await f.read():
                        await self._watch_jobs()
                        self.changed("sched")
                finally:
                    await f.close()
            except CONNECTION_ERRORS as err:
                self.sched.link.lost(err)
                if self.sched.link.error is None:
                    self.sched.link.error = f"scheduler: {err}"
                self.changed("sched")
            await asyncio.sleep(backoff.delay())

    async def _watch_jobs(self) -> None:
        """A monitor follower for each job not complete; complete ones read once."""
        c = await self.sched.controller()
        jobs = views.parse_jobs(await c.read("/admin/jobs"))
        ids = {j["id"] for j in jobs}
        for id in [i for i in self.monitors if i not in ids]:
            del self.monitors[id]
        for job in jobs:
            id = job["id"]
            task = self._watching.get(id)
            if task is not None and not task.done():
                continue
            if job["state"] == "complete" and id in self.monitors and \
                    self.monitors[id].get("state") == "complete":
                continue
            self._watching[id] = asyncio.create_task(self._follow_monitor(c, id))

    async def _follow_monitor(self, c: Controller, id: int) -> None:
        try:
            async for status in c.monitor(id):
                status = {k: views._number(v) if k != "state" else v
                          for k, v in status.items()}
                status["percent"] = views.percent(status.get("complete", 0),
                                                  status.get("total", 0))
                self.monitors[id] = status
                self._put(("monitor", {"id": id, "status": status}))
                self.changed("sched")
        except CONNECTION_ERRORS as err:
            log.debug("monitor of job %s: %s", id, err)
        finally:
            if self._watching.get(id) is asyncio.current_task():
                del self._watching[id]

    async def _follow_registry(self) -> None:
        from geryon.registry.client import watch
        backoff = Backoff(initial=0.3, cap=3.0)
        while True:
            try:
                client = await self.registry.link.client()
                async for _ in watch(client, on_open=lambda: self.changed("cluster")):
                    backoff.reset()
                    self.changed("cluster")
            except CONNECTION_ERRORS as err:
                self.registry.link.lost(err)
                self.changed("cluster")
            await asyncio.sleep(backoff.delay())
