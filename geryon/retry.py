"""The one retry rule and the one reconnect loop.

Backoff: start near `initial`, grow by `factor`, never past `cap`, each delay jittered by
+-25% so that many clients restarting together spread out.  Owen's workers use 1 s, x1.5,
capped at 5 min; registry holders cap low to come back fast.

Reconnect: what every long-lived client of a server does (the Registrar, the node,
`refresh --watch`): dial, serve on the connection until it ends, wait a backoff, dial
again, for ever.  It takes its clock, random source and sleep as arguments, so a test steps
it (`step()` is one dial-and-serve) without waiting for real time.  Grace is the pure rule
"do nothing drastic for a while after (re)connecting", used by `refresh --watch` so that a
registry restart does not make disks flap while their nodes register again.
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from geryon.errors import GeryonError

log = logging.getLogger("geryon.retry")

# What ends a connection, as opposed to a bug: these are retried, anything else is raised.
CONNECTION_ERRORS = (GeryonError, OSError, EOFError)


@dataclass
class Backoff:
    """Delays for successive retries; reset() after a success."""

    initial: float = 1.0
    factor: float = 1.5
    cap: float = 300.0
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _next: float = field(default=0.0, init=False)

    def __post_init__(self):
        self._next = self.initial

    def delay(self) -> float:
        """The next delay in seconds, jittered, then grow the base for the one after."""
        base = self._next
        self._next = min(self.cap, self._next * self.factor)
        return base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self._next = self.initial


class Reconnect:
    """Keep a connection to a server: dial() gives a connected client, serve(client) uses
    it until the connection ends (returning or raising a connection error), and the
    client's close() is awaited after.  on_lost(error or None) hears of each loss."""

    def __init__(self, dial, serve, *, backoff: Backoff | None = None, on_lost=None,
                 sleep=asyncio.sleep, clock=time.monotonic, what: str = "server"):
        self.dial, self.serve = dial, serve
        self.backoff = backoff or Backoff(initial=0.5, cap=5.0)
        self.on_lost = on_lost or self._log_loss
        self.sleep, self.clock = sleep, clock
        self.what = what
        self.connected_at: float | None = None
        self.attempts = 0

    def _log_loss(self, err) -> None:
        log.warning("%s: %s; dialling again", self.what, err or "connection closed")

    async def connect(self):
        """Dial until it works (a node at boot waits for its registry this way)."""
        while True:
            self.attempts += 1
            try:
                client = await self.dial()
            except CONNECTION_ERRORS as err:
                self.on_lost(err)
                await self.sleep(self.backoff.delay())
                continue
            self.backoff.reset()
            self.connected_at = self.clock()
            return client

    async def step(self, client=None) -> float:
        """One connection's life: dial (unless given a client), serve until it ends, close.
        Returns the delay to wait before the next step."""
        if client is None:
            client = await self.connect()
        error = None
        try:
            await self.serve(client)
        except CONNECTION_ERRORS as err:
            error = err
        finally:
            self.connected_at = None
            await client.close()
        self.on_lost(error)
        return self.backoff.delay()

    async def run(self, client=None) -> None:
        """Step for ever (cancel to stop); client: a connection made already by connect()."""
        while True:
            delay = await self.step(client)
            client = None
            await self.sleep(delay)


@dataclass
class Grace:
    """A period after an event (a reconnection) during which drastic steps wait."""

    seconds: float
    clock: object = time.monotonic
    started: float | None = None

    def start(self) -> None:
        self.started = self.clock()

    def over(self) -> bool:
        return self.started is not None and self.clock() - self.started >= self.seconds

    def left(self) -> float:
        """Seconds until the grace is over (0 when it is)."""
        if self.started is None:
            return self.seconds
        return max(0.0, self.seconds - (self.clock() - self.started))
