"""The local rcpu agent: one process per user and cluster that keeps the connections to
the registry and to the cpus, so that an `rcpu` command costs a small client and one
block, not a Python start with asyncssh and two SSH handshakes (as OpenSSH's ControlMaster
spares ssh its handshakes).

Theory of operation.  `rcpu` (geryon.rcpu.quick) connects to a Unix socket in
$GERYON_HOME/run, named after the GERYON_* settings of its environment, and sends one
request: its arguments and working directory as a JSON line, and its stdin, stdout and
stderr as descriptors (SCM_RIGHTS).  The agent parses the arguments with the rcpu command
itself (geryon.cli.rcpu), runs the block with the descriptors as its streams, and answers
with the exit status.  If the command goes away (Ctrl-C, SIGTERM), its socket closes and
the agent ends the block.  No socket, or a dead one, and rcpu starts an agent; an agent
that cannot start leaves rcpu to run the block itself.  The agent ends after IDLE seconds
without requests, and when the registry it was started for goes away while it is idle.
The socket is the user's alone (mode 0600 in a 0700 directory).
"""

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

log = logging.getLogger("geryon.rcpu")

IDLE = 300.0  # seconds without a request before the agent ends
MAX_REQUEST = 1 << 20  # bytes of one request line


class Agent:
    def __init__(self, path: Path):
        from geryon.config import Config
        from geryon.rcpu.client import Rcpu
        self.path = Path(path)
        self.client = Rcpu(Config.load(), keep=True)
        self.running = 0
        self.last = 0.0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.last = loop.time()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        temporary = self.path.with_suffix(f".{os.getpid()}")
        temporary.unlink(missing_ok=True)
        listener.bind(str(temporary))
        os.chmod(temporary, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        os.replace(temporary, self.path)  # clients see a listening socket or none
        log.info("rcpu agent on %s", self.path)
        tasks = set()
        try:
            while True:
                try:
                    conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 5.0)
                except asyncio.TimeoutError:
                    if self.running == 0 and self._done(loop):
                        return
                    continue
                task = asyncio.ensure_future(self.handle(conn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            self.path.unlink(missing_ok=True)  # first: a caller now starts a new agent
            listener.close()
            for task in tasks:
                task.cancel()
            await self.client.close()

    def _done(self, loop) -> bool:
        if loop.time() - self.last > IDLE:
            log.info("rcpu agent: idle for %.0f s, ending", IDLE)
            return True
        registry = self.client.registry
        if registry is not None and registry.conn.is_closed():
            log.info("rcpu agent: the registry went away, ending")
            return True
        return False

    async def handle(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        fds = []
        self.running += 1
        try:
            conn.setblocking(True)
            conn.settimeout(10)
            message, fds, _, _ = await loop.run_in_executor(
                None, socket.recv_fds, conn, MAX_REQUEST, 3)
            if len(fds) != 3 or not message.endswith(b"\n"):
                return
            request = json.loads(message)
            conn.setblocking(False)
            work = asyncio.ensure_future(self.run(request, fds))
            gone = asyncio.ensure_future(loop.sock_recv(conn, 1))  # EOF: the caller went
            done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
            if work not in done:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                return
            gone.cancel()
            await loop.sock_sendall(conn, json.dumps({"exit": work.result()}).encode() + b"\n")
        except (OSError, ValueError) as err:
            log.warning("rcpu agent: a request failed: %s", err)
        finally:
            self.running -= 1
            self.last = loop.time()
            for fd in fds:
                os.close(fd)
            conn.close()

    async def run(self, request: dict, fds: list[int]) -> int:
        import click

        from geryon.cli.rcpu import execute, rcpu
        stdin, stdout, stderr = fds
        try:
            ctx = rcpu.make_context("rcpu", list(request["argv"]), resilient_parsing=False)
        except click.ClickException as err:
            os.write(stderr, f"rcpu: {err.format_message()}\n".encode())
            return err.exit_code
        params = ctx.params
        if params["block"] is None and not (params["show_next"] or params["show_gridrc"]):
            os.write(stderr, b"rcpu: give a block to run, e.g. rcpu '{ls /n}'\n")
            return 2
        from geryon.errors import GeryonError
        try:
            await self.client.dial()
        except GeryonError as err:
            os.write(stderr, f"rcpu: {err}\n".encode())
            return 1
        return await execute(self.client, params, stdin, stdout, stderr, request.get("cwd"))


def main() -> None:
    from geryon.cli import setup_logging
    path = Path(sys.argv[1])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    setup_logging(False)
    logging.basicConfig(filename=str(path.with_suffix(".log")), force=True,
                        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    agent = Agent(path)
    loop = asyncio.new_event_loop()
    task = loop.create_task(agent.serve())
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()


if __name__ == "__main__":
    main()
