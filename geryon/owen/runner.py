"""One long-lived shell per task slot, which runs the worker's tasks one after another.

Theory of operation.  Starting a process from Python per task (a fork or spawn of the
worker, a child-watcher thread, pipes) costs more than the task's own `sh`; a shell that
stays up and forks a subshell per task costs less than exec'ing a new one.  A Runner is
`sh -c RUNNER` in a session (and process group) of its own, reading one line per task
from its standard input: shell text (command_line) that, in a subshell, goes to the
working directory, takes standard input from `.geryon-input` and gives standard output
and error to `.geryon-stderr`, sets the task's arguments (`set --`) and variables
(`export`), and reads the task type's script (afresh for every task); the subshell then
runs `runtask "$@"` and `submit` if the script defines it, and the runner writes the
subshell's exit status as a line.  A newline in an argument travels as `$nl`.

The working directory is the runner's own, used by one task after another: the worker
empties it between them but for `.geryon-input` and `.geryon-stderr`, which it rewrites
in place (on ext4, truncating a file that held data to nothing costs a journal flush of
a quarter of a millisecond; writing over it and cutting it to length costs nothing).

A task is killed by killing the runner's whole process group, the runner with it (a
shell without a terminal cannot give each subshell a group of its own); the next task
starts a new runner.  Stopping and deadlines are rare, so that costs nothing in the
common case, and a task can no more escape than it could a process group of its own.
"""

import asyncio
import os
import re
import signal
from pathlib import Path

from geryon.errors import GeryonError

RUNNER = r"""
nl='
'
while IFS= read -r line; do
	(
		eval "$line"
		runtask "$@" || exit
		if command -v submit >/dev/null 2>&1; then submit >"$GERYON_RESULT" || exit; fi
	)
	echo $?
done
"""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sh_word(text: str) -> str:
    """text as one shell word on one line (a newline becomes `$nl`, which RUNNER sets)."""
    if "\0" in text:
        raise GeryonError(f"{text[:40]!r}: a task's arguments and variables cannot hold NUL")
    return "'" + "'\"$nl\"'".join(p.replace("'", "'\\''") for p in text.split("\n")) + "'"


def command_line(work: Path, script: Path, args, env: dict) -> bytes:
    """The line a runner is sent for one task (see the theory of operation)."""
    words = [f"cd {sh_word(str(work))} || exit 125",
             "exec <.geryon-input >.geryon-stderr 2>&1",
             " ".join(["set --", *(sh_word(a) for a in args)])]
    for tag, value in env.items():
        if not NAME.fullmatch(tag):
            raise GeryonError(f"task variable {tag[:40]!r} is not a shell variable name")
        words.append(f"export {tag}={sh_word(value)}")
    words.append(f". {sh_word(str(script))} || exit 125")
    return ("; ".join(words) + "\n").encode()


class Runner:
    """A shell that runs tasks one at a time: run(work) gives each one's exit status.
    work is the working directory its tasks use, one after another (the worker empties
    it between them)."""

    def __init__(self, env: dict, cwd: Path, work: Path):
        self.env, self.cwd, self.work = env, cwd, work
        self.proc: asyncio.subprocess.Process | None = None
        self.killed = False
        self.input: int | None = None   # work/.geryon-input, open for writing

    def put_input(self, data: bytes) -> None:
        """Make work/.geryon-input hold data, written over what it held."""
        if self.input is None:
            self.input = os.open(self.work / ".geryon-input", os.O_WRONLY | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.pwrite(self.input, view, len(data) - len(view)):]
        os.ftruncate(self.input, len(data))

    def forget_input(self) -> None:
        """The working directory was moved or removed: open a new input file next time."""
        if self.input is not None:
            os.close(self.input)
            self.input = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.killed

    async def run(self, line: bytes) -> int | None:
        """Run the task command_line() gave; its exit status, or None if the runner was
        killed (or died) meanwhile."""
        if self.proc is None:
            self.proc = await asyncio.create_subprocess_exec(
                "sh", "-c", RUNNER, "geryon-runner", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True)
        try:
            self.proc.stdin.write(line)
        except (BrokenPipeError, ConnectionResetError):
            return None
        line = await self.proc.stdout.readline()
        if not line.endswith(b"\n"):
            self.killed = True
            return None
        return int(line)

    async def kill(self) -> None:
        """Kill the running task and the runner: SIGTERM to the group, SIGKILL after 2 s."""
        self.killed = True
        self.forget_input()
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                await asyncio.wait_for(proc.wait(), 2)
                break
            except asyncio.TimeoutError:
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # what of the task outlived the runner
        except ProcessLookupError:
            pass

    async def close(self) -> None:
        """Let the runner go (it ends when its standard input does)."""
        self.forget_input()
        if self.alive:
            self.proc.stdin.close()
            await self.proc.wait()
