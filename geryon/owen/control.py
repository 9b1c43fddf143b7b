"""A controller: post jobs to the scheduler and follow them (what `geryon owen` does).

Owen's `job` shell function, over SFTP: open admin/clone (the job is made; reading gives
its number), write the job's input files into admin/<n>/data as file2rec records, then
write `load ...` on the clone.  `start` adds `start`.  The input files a job needs are
found in its arguments: filesplit's file, and each `(file (path P))` of a `job` spec.
"""

import os
from pathlib import Path

from geryon import quote
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.client import Client
from geryon.owen.records import file2rec

WRITE = 1 << 19   # bytes per SFTP write of a job's data (below every server's limit)


def parse_pairs(line: str) -> dict:
    """`name value name value ...` (a monitor line or a node's line after its name)."""
    words = quote.split(line)
    return dict(zip(words[0::2], words[1::2]))


def filesplit_files(args: list[str]) -> tuple[str | None, str | None]:
    """filesplit's input file and its result file (from -o, or FILE.result)."""
    output, i = None, 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            i += 1
            break
        letters = args[i][1:]
        if "o" in letters:
            rest = letters[letters.index("o") + 1:]
            if rest:
                output = rest
            elif i + 1 < len(args):
                output, i = args[i + 1], i + 1
        i += 1
    if i >= len(args):
        return None, output
    return args[i], output or args[i] + ".result"


def job_files(spec: str) -> list[str]:
    """The (path P) of each (file ...) in a `job` spec."""
    from geryon.owen import sexpr
    try:
        tree = sexpr.parse(spec.encode())
    except GeryonError:
        return []  # the scheduler's load says what is wrong with it
    out = []
    for clause in getattr(tree, "args", ()):
        if isinstance(clause, sexpr.List) and clause.op == "file":
            for sub in clause.args:
                if isinstance(sub, sexpr.List) and sub.op == "path" and sub.args:
                    text = getattr(sub.args[0], "text", lambda: None)()
                    if text:
                        out.append(text)
    return out


def input_files(argv: list[str]) -> list[str]:
    """The local files (and directories) a job's generator will read."""
    if argv and argv[0] == "filesplit":
        file, _ = filesplit_files(argv[1:])
        return [file] if file else []
    if argv and argv[0] == "job" and len(argv) > 1:
        return job_files(argv[1])
    return []


def result_path(argv: list[str], id: int) -> str:
    """Where `wait` puts the result, as Owen would: FILE.result, -o, else job<n>.result."""
    if argv and argv[0] == "filesplit":
        _, output = filesplit_files(argv[1:])
        if output:
            return output
    return f"job{id}.result"


def records_of(paths: list[str]):
    """file2rec records of the files named (each file under a directory, for one)."""
    files = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files += [str(f) for f in sorted(path.rglob("*")) if f.is_file()]
        elif path.exists():
            files.append(p)
        else:
            raise GeryonError(f"{p}: no such file; the job's input must exist here, where "
                              "the job is started")
    return file2rec(files)


class Controller:
    """A connection to the scheduler for posting and following jobs."""

    def __init__(self, client: Client):
        self.client = client

    @classmethod
    async def connect(cls, config: Config | None = None, sched: str = "",
                      identity: Identity | None = None) -> "Controller":
        from geryon.owen.server import sched_address
        config = config or Config.load()
        address = await sched_address(config, sched)
        return cls(await Client.connect(address, identity, keepalive=float(config.keepalive)))

    async def close(self) -> None:
        await self.client.close()

    async def job(self, argv: list[str], description: str = "", start: bool = False) -> int:
        """Make a job, send its input and load its generator; its number."""
        files = input_files(argv)
        records = records_of(files) if files else None
        clone = await self.client.open("/admin/clone", "r+")
        try:
            id = int((await clone.read()).decode().strip())
            if records is not None:
                data = await self.client.open(f"/admin/{id}/data", "w")
                try:
                    buf = bytearray()
                    for piece in records:
                        buf += piece
                        while len(buf) >= WRITE:
                            await data.write(bytes(buf[:WRITE]))
                            del buf[:WRITE]
                    if buf:
                        await data.write(bytes(buf))
                finally:
                    await data.close()
            if description:
                await self.client.write(f"/admin/{id}/description", description)
            await clone.write(quote.join(["load", *argv]))
        finally:
            await clone.close()
        if start:
            await self.ctl(id, ["start"])
        return id

    async def ctl(self, id: int | str, words: list[str]) -> None:
        await self.client.write(f"/admin/{id}/ctl", quote.join(words))

    async def admin_ctl(self, words: list[str]) -> str:
        return (await self.client.write("/admin/ctl", quote.join(words), read_back=True)
                ).decode()

    async def read(self, path: str) -> str:
        return (await self.client.read(path)).decode(errors="replace")

    async def monitor(self, id: int | str):
        """Yield the job's status (a dict) now and at each change, until it is done."""
        f = await self.client.open(f"/admin/{id}/monitor", "r", wait=True)
        try:
            while True:
                data = await f.read()
                if not data:
                    return
                for line in data.decode().splitlines():
                    yield parse_pairs(line)
        finally:
            await f.close()

    async def argv(self, id: int | str) -> list[str]:
        for line in (await self.read("/admin/jobs")).splitlines():
            words = quote.split(line)
            if words and words[0] == str(id):
                return words[6:]
        raise GeryonError(f"job {id}: no such job (`geryon owen jobs` lists them)")

    async def results(self, id: int | str, target: Path | None = None) -> bytes | Path:
        """The job's result: its bytes, or written to target (atomically)."""
        data = await self.client.read(f"/admin/{id}/result")
        if target is None:
            return data
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return target

    async def wait(self, id: int | str, progress=None) -> dict:
        """Follow the job until it is complete; its last status."""
        last = {}
        async for status in self.monitor(id):
            last = status
            if progress is not None:
                progress(status)
        if last.get("state") != "complete":
            raise GeryonError(f"job {id} ended {last.get('state', 'deleted')}, not complete")
        return last

