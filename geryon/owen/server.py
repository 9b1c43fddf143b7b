"""The Owen scheduler service: the scheduler tree served over SSH, its state in SQLite,
a clock that ticks once a second (deadlines, parole), the job scripts installed in its
scripts directory, and its `svc infsched` entry in the registry when one is
configured."""

import asyncio
import logging
import socket
import time
from pathlib import Path

from geryon import dial
from geryon.config import Config
from geryon.ns.ca import Identity
from geryon.ns.server import Server
from geryon.owen.core import Rules, Scheduler
from geryon.owen.jobscript import JobScripts
from geryon.owen.store import SQLiteStorage
from geryon.owen.tree import Limits, SchedTree

log = logging.getLogger("geryon.owen")

TICK = 1.0  # seconds between looks at the clock


class SchedServer:
    """A running scheduler."""

    def __init__(self, state: Path, identity: Identity, *, config: Config | None = None,
                 load=None, formats: dict | None = None, keepalive: float | None = None,
                 register: bool = True, clock=time.time, scripts: Path | None = None):
        self.config = config or Config.load()
        if load is None:
            from geryon.owen.generators import FORMATS, load
            formats = FORMATS if formats is None else formats
        self.scripts = JobScripts(Path(scripts) if scripts else Path(state) / "scripts")
        generate = load

        def load(argv, data_dir):   # a job naming a script that is not installed fails
            generator = generate(argv, data_dir)
            self.scripts.check(generator)
            return generator

        self.storage = SQLiteStorage(Path(state))
        self.sched = Scheduler(self.storage, load, Rules.from_config(self.config), clock=clock)
        restored = [j for j in self.sched.jobs.values() if j.state != "deleted"]
        log.info("scheduler: %d jobs restored from %s", len(restored), self.storage.path)
        self.tree = SchedTree(self.sched, formats or {},
                              Limits(int(self.config.owen_data_bytes),
                                     int(self.config.owen_result_bytes)), self.scripts)
        self.server = Server(self.tree, identity, keepalive=float(
            keepalive if keepalive is not None else self.config.keepalive))
        self.identity = identity
        self.register = register and bool(self.config.registry or self.config.use_mdns)
        self.registrar = None
        self.tasks: list[asyncio.Task] = []

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self, address="tcp!*!infsched") -> "SchedServer":
        addr = dial.parse(address, "infsched") if isinstance(address, str) else address
        await self.server.start(addr)
        self.tasks.append(asyncio.get_running_loop().create_task(self._tick()))
        if self.register:
            from geryon.registry.client import Registrar
            self.registrar = Registrar(self.config, self.identity)
            try:
                await self.registrar.connect()
            except Exception as err:  # the registry may come later: the loop keeps trying
                log.warning("scheduler: registry not reached yet (%s); will keep trying", err)
            host = self.config.host or (self.registrar.client.local_host
                                        if self.registrar.client else socket.gethostname())
            await self.registrar.add(f"tcp!{host}!{self.port}", {"svc": "infsched"})
            self.tasks.append(asyncio.get_running_loop().create_task(self.registrar.run()))
        return self

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.sched.tick()
            except Exception:  # one bad tick must not stop the clock
                log.exception("scheduler: tick failed")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.registrar is not None:
            await self.registrar.close()
        await self.server.close()
        self.storage.close()


async def sched_address(config: Config, explicit: str = "") -> dial.Address:
    """Where the scheduler is: --sched, GERYON_SCHED or the config (in that order; both
    reach Config.sched), else the registry's `svc infsched` entry."""
    text = explicit or config.sched
    if text:
        return dial.parse(text, "infsched")
    from geryon.errors import GeryonError
    from geryon.registry.client import dial_registry, query
    try:
        client = await dial_registry(config)
    except GeryonError as err:
        raise GeryonError(f"no scheduler address: pass --sched tcp!host!6678, set "
                          f"GERYON_SCHED, or register one in the registry ({err})") from None
    try:
        found = await query(client, "svc", "infsched")
    finally:
        await client.close()
    if not found:
        raise GeryonError("no scheduler is registered (svc infsched); start `geryon sched` or "
                          "pass --sched tcp!host!6678")
    return dial.parse(found[0].name, "infsched")
