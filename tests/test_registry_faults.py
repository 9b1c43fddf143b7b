"""The registry SIGKILLed while many entries are being registered: every persistent entry
whose registration was answered is there after the restart, with all its attributes;
nothing else is half there; live holders register again on their own."""

import asyncio
import signal
import threading

from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError
from geryon.registry.client import Registrar, parse_services
from support import start_registry, wait_for

ENTRIES = 2000


def attrs_of(i: int) -> str:
    return f"kind disk n {i} persist 1 pad {'x' * (i % 50 + 1)}"


async def register_until_killed(home, address, acknowledged: list, killed: threading.Event):
    """Register persist entries one after another (each `new` written and closed, as a
    shell does) until the connection dies; note each one the registry answered."""
    client = await Client.connect(address, Identity(home))
    try:
        for i in range(ENTRIES):
            try:
                await client.write("/new", f"e{i} {attrs_of(i)}")
            except RemoteError:
                return
            acknowledged.append(i)
    finally:
        await client.close()


def test_sigkill_while_registering_loses_no_answered_entry_and_halves_none(home, tmp_path):
    registry = start_registry(home)
    acknowledged: list[int] = []
    killed = threading.Event()

    def killer():
        wait_for(lambda: len(acknowledged) >= 300, 60, 0.01, what="300 registrations")
        registry.kill(signal.SIGKILL)
        killed.set()

    thread = threading.Thread(target=killer)
    thread.start()
    asyncio.run(register_until_killed(home, registry.address, acknowledged, killed))
    thread.join()
    assert killed.is_set() and 300 <= len(acknowledged) < ENTRIES
    registry.start()  # same port, same state directory

    async def index():
        client = await Client.connect(registry.address, Identity(home))
        try:
            return parse_services(await client.read("/index"))
        finally:
            await client.close()

    try:
        services = {s.name: s for s in asyncio.run(index())}
        for i in acknowledged:
            assert f"e{i}" in services, f"e{i} was answered, then lost"
        for name, service in services.items():
            i = int(name[1:])
            want = dict(zip(attrs_of(i).split()[0::2], attrs_of(i).split()[1::2]))
            assert service.attrs == want, f"{name} is half there: {service.attrs}"
        # at most the one registration in flight when the registry died is extra
        assert len(services) - len(acknowledged) <= 1
    finally:
        registry.stop()


def test_live_holders_register_again_after_a_sigkill(home):
    registry = start_registry(home)

    async def hold_and_watch():
        from geryon.config import Config
        registrar = Registrar(Config.load(registry=registry.address), Identity(home))
        await registrar.connect()
        for i in range(200):
            await registrar.add(f"live{i}", {"svc": "x", "n": str(i)})
        keeper = asyncio.ensure_future(registrar.run())
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, registry.kill, signal.SIGKILL)
            await loop.run_in_executor(None, registry.start)

            async def count():
                client = await Client.connect(registry.address, Identity(home))
                try:
                    return len(parse_services(await client.read("/index")))
                finally:
                    await client.close()

            for _ in range(100):  # 10 s at most
                if await count() == 200:
                    return True
                await asyncio.sleep(0.1)
            return False
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await registrar.close()

    try:
        assert asyncio.run(hold_and_watch()), "the holder's 200 entries did not come back"
    finally:
        registry.stop()
