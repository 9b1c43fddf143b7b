"""One long-lived shell per task slot, which runs the worker's tasks one after another.

Theory of operation.  Starting a process from Python per task (a fork or spawn of the
worker, a child-watcher thread, pipes) costs more than the task's own `sh`; a shell that
stays up and forks a subshell per task costs less than exec'ing a new one.  A Runner is
`sh -c RUNNER` in a session (and process group) of its own, reading working directories
from its standard input, one a line.  For each it runs, in a subshell, `$work/.geryon-task`
(written by the worker: the task's arguments as `set --`, its variables as `export`, and
`. SCRIPT`, the task type's script, read afresh for every task), then `runtask "$@"`, then
`submit` if the script defines it, with standard input `.geryon-input` and standard output
and error `.geryon-stderr`; then it writes the subshell's exit status as a line.

A task is killed by killing the runner's whole process group, the runner with it (a
shell without a terminal cannot give each subshell a group of its own); the next task
starts a new runner.  Stopping and deadlines are rare, so that costs nothing in the
common case, and a task can no more escape than it could a process group of its own.
"""

import asyncio
import os
import re
import shlex
import signal
from pathlib import Path

from geryon.errors import GeryonError

RUNNER = r"""
while IFS= read -r work; do
	(
		cd "$work" || exit 125
		exec <.geryon-input >.geryon-stderr 2>&1
		. ./.geryon-task || exit 125
		runtask "$@" || exit
		if command -v submit >/dev/null 2>&1; then submit >"$GERYON_RESULT" || exit; fi
	)
	echo $?
done
"""


NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def task_file(script: Path, args, env: dict) -> bytes:
    """The `.geryon-task` a runner sources: arguments, variables, the task's script."""
    lines = [" ".join(["set --", *(shlex.quote(a) for a in args)])]
    for tag, value in env.items():
        if not NAME.fullmatch(tag):
            raise GeryonError(f"task variable {tag[:40]!r} is not a shell variable name")
        lines.append(f"export {tag}={shlex.quote(value)}")
    lines.append(f". {shlex.quote(str(script))} || exit 125")
    return ("\n".join(lines) + "\n").encode()


class Runner:
    """A shell that runs tasks one at a time: run(work) gives each one's exit status."""

    def __init__(self, env: dict, cwd: Path):
        self.env, self.cwd = env, cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.killed = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not self.killed

    async def run(self, work: Path) -> int | None:
        """Run the task whose files are in work; its exit status, or None if the runner
        was killed (or died) meanwhile."""
        if self.proc is None:
            self.proc = await asyncio.create_subprocess_exec(
                "sh", "-c", RUNNER, "geryon-runner", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True)
        if "\n" in str(work):
            raise ValueError(f"{work!r}: a working directory's name holds a newline")
        try:
            self.proc.stdin.write(os.fsencode(work) + b"\n")
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
        if self.alive:
            self.proc.stdin.close()
            await self.proc.wait()
