"""grid/register and grid/reglisten: run a server and keep it registered while it runs."""

import asyncio
import logging
import os
import socket

from geryon import dial
from geryon.children import die_with_parent
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.registry.client import Registrar

log = logging.getLogger("geryon.registry")


def exit_status(returncode: int) -> int:
    """A child's status as a shell gives it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def free_port(host: str = "") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def accepting(host: str, port: int) -> bool:
    """Whether something listens on the port (at the host, or on loopback)."""
    for address in dict.fromkeys([host, "127.0.0.1"]):
        try:
            _, writer = await asyncio.open_connection(address, port)
        except OSError:
            continue
        writer.close()
        return True
    return False


async def start(command: list[str], **kwargs):
    try:
        return await asyncio.create_subprocess_exec(*command, preexec_fn=die_with_parent,
                                                    **kwargs)
    except OSError as err:
        raise GeryonError(f"cannot run {command[0]}: {err.strerror}") from None


async def register_command(command: list[str], attrs: dict, registry: str = "") -> int:
    """Run command on a free port; register it once it listens; return its exit status."""
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in command]
    registrar = Registrar(Config.load(registry=registry))
    await registrar.connect()
    name = f"tcp!{registrar.local_host}!{port}"
    proc = await start(argv, env={**os.environ, "GERYON_PORT": str(port)})
    keeper = None
    try:
        exited = asyncio.ensure_future(proc.wait())
        waited = 0
        while not exited.done() and not await accepting(registrar.local_host, port):
            await asyncio.sleep(0.1)
            waited += 1
            if waited == 100:
                log.warning("%s has not listened on port %d after 10 s (it must listen on "
                            "$GERYON_PORT or {port}); still waiting before registering",
                            argv[0], port)
        if not exited.done():
            await registrar.add(name, attrs)
            keeper = asyncio.ensure_future(registrar.run())
            log.info("registered %s", name)
        return exit_status(await exited)
    except asyncio.CancelledError:
        proc.terminate()
        return exit_status(await proc.wait())
    finally:
        if keeper is not None:
            keeper.cancel()
        await registrar.close()


async def reglisten_command(address: str, command: list[str], attrs: dict,
                            registry: str = "") -> int:
    """Listen on address, run command per connection (stdin/stdout = the connection)."""
    addr = dial.parse(address)
    try:
        listener = socket.create_server((addr.bind_host(), addr.port), reuse_port=False)
    except OSError as err:
        raise GeryonError(f"cannot listen on {addr}: {err.strerror or err}; is another "
                          "server using that port?") from None
    listener.setblocking(False)
    port = listener.getsockname()[1]
    registrar = Registrar(Config.load(registry=registry))
    await registrar.connect()
    host = addr.host if not addr.any_host else registrar.local_host
    await registrar.add(f"tcp!{host}!{port}", attrs)
    keeper = asyncio.ensure_future(registrar.run())
    loop = asyncio.get_running_loop()
    children = set()
    try:
        while True:
            conn, peer = await loop.sock_accept(listener)
            with conn:
                proc = await start(command, stdin=conn.fileno(), stdout=conn.fileno(),
                                   env={**os.environ, "GERYON_PEER": f"tcp!{peer[0]}!{peer[1]}"})
            children.add(proc)
            task = asyncio.ensure_future(proc.wait())
            task.add_done_callback(lambda _, p=proc: children.discard(p))
    finally:
        keeper.cancel()
        listener.close()
        for proc in children:
            proc.terminate()
        await registrar.close()
