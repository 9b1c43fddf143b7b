"""The one backoff and the one reconnect loop, stepped with a fake clock, random source and
sleep: no test here waits for real time."""

import asyncio
import random

import pytest

from geryon.errors import GeryonError
from geryon.retry import Backoff, Grace, Reconnect


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class FakeClient:
    def __init__(self, n):
        self.n = n
        self.closed = False

    async def close(self):
        self.closed = True


def test_backoff_grows_by_its_factor_to_its_cap_within_its_jitter():
    backoff = Backoff(initial=1.0, factor=1.5, cap=5.0, rng=random.Random(7))
    delays = [backoff.delay() for _ in range(8)]
    bases = [1.0, 1.5, 2.25, 3.375, 5.0, 5.0, 5.0, 5.0]
    for delay, base in zip(delays, bases):
        assert base * 0.75 <= delay <= base * 1.25
    backoff.reset()
    assert 0.75 <= backoff.delay() <= 1.25


def test_backoff_is_repeatable_with_a_seeded_random_source():
    one = Backoff(rng=random.Random(3))
    two = Backoff(rng=random.Random(3))
    assert [one.delay() for _ in range(5)] == [two.delay() for _ in range(5)]


def test_connect_dials_until_it_works_and_backs_off_in_between():
    clock = FakeClock()
    failures = iter([OSError("refused"), GeryonError("no answer"), None])
    lost = []

    async def dial():
        failure = next(failures)
        if failure:
            raise failure
        return FakeClient(1)

    loop = Reconnect(dial, None, backoff=Backoff(1.0, 2.0, 10.0, jitter=0.0),
                     sleep=clock.sleep, clock=clock, on_lost=lost.append)
    client = asyncio.run(loop.connect())
    assert client.n == 1 and loop.attempts == 3
    assert clock.slept == [1.0, 2.0]
    assert [str(e) for e in lost] == ["refused", "no answer"]
    assert loop.connected_at == 3.0


def test_a_served_connection_resets_the_backoff_and_a_lost_one_is_closed_and_redialled():
    clock = FakeClock()
    made = []
    served = []

    async def dial():
        if len(made) == 1 and not served:
            raise OSError("down")
        made.append(FakeClient(len(made)))
        return made[-1]

    async def serve(client):
        served.append(client.n)
        clock.now += 100  # connected for a while
        if client.n == 0:
            raise EOFError("connection lost")

    loop = Reconnect(dial, serve, backoff=Backoff(1.0, 2.0, 10.0, jitter=0.0),
                     sleep=clock.sleep, clock=clock, on_lost=lambda err: None)

    async def two_steps():
        first = await loop.step()
        second = await loop.step()
        return first, second

    first, second = asyncio.run(two_steps())
    assert served == [0, 1] and all(c.closed for c in made)
    assert first == 1.0 and second == 1.0  # each connection reset the backoff
    assert loop.connected_at is None


def test_a_bug_in_serve_is_not_swallowed():
    async def dial():
        return FakeClient(0)

    async def serve(client):
        raise ZeroDivisionError

    loop = Reconnect(dial, serve, sleep=FakeClock().sleep)
    with pytest.raises(ZeroDivisionError):
        asyncio.run(loop.step())


def test_run_steps_for_ever_until_cancelled():
    clock = FakeClock()
    count = 0

    async def dial():
        return FakeClient(0)

    async def serve(client):
        nonlocal count
        count += 1
        if count == 5:
            raise asyncio.CancelledError

    loop = Reconnect(dial, serve, backoff=Backoff(0.5, 1.0, 0.5, jitter=0.0),
                     sleep=clock.sleep, clock=clock, on_lost=lambda err: None)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(loop.run())
    assert count == 5 and clock.slept == [0.5] * 4


def test_grace_is_over_only_after_its_seconds():
    clock = FakeClock()
    grace = Grace(3.0, clock)
    assert not grace.over() and grace.left() == 3.0
    grace.start()
    clock.now = 2.9
    assert not grace.over() and grace.left() == pytest.approx(0.1)
    clock.now = 3.0
    assert grace.over() and grace.left() == 0.0
