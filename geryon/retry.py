"""The one retry/backoff rule: start near `initial`, grow by `factor`, never past `cap`,
each delay jittered by +-25% so that many clients restarting together spread out.
Owen's workers use 1 s, x1.5, capped at 5 min; registry holders cap low to come back fast.
"""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for successive retries; reset() after a success."""

    initial: float = 1.0
    factor: float = 1.5
    cap: float = 300.0
    jitter: float = 0.25
    _next: float = field(default=0.0, init=False)

    def __post_init__(self):
        self._next = self.initial

    def delay(self) -> float:
        """The next delay in seconds, jittered, then grow the base for the one after."""
        base = self._next
        self._next = min(self.cap, self._next * self.factor)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self._next = self.initial
