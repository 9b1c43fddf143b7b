"""Scheduler-side job scripts: a `job`'s `(script NAME arg...)`.

A job script is a POSIX sh file the scheduler's administrator installed in the scripts
directory (`geryon sched --scripts DIR`, default `<state>/scripts`).  Only a script
installed there runs, and NAME is only ever a file name in it, never a path from the job
spec (the generator refuses a NAME with '/').  It may define:

  verify arg...     run on the scheduler for each good output, the output on its standard
                    input; a false exit status means the task failed (it runs again, up
                    to the generator's limit), and its stderr says why
  finalise arg...   run once a task is done (its result kept), the output on its standard
                    input

Both get the script's arguments, and `$taskid`, `$job`, `$task` (the task number) and the
task's `(value TAG ...)` variables in their environment, and run in a scratch directory
of their own that is removed afterwards.  A function the script does not define counts as
success.  A run that takes longer than the timeout is killed and counts as a failure.
"""

import asyncio
import logging
import os
import signal
import tempfile
from pathlib import Path

from geryon.owen.generators import GeneratorError

log = logging.getLogger("geryon.owen")

# $0 is the script, $1 the function; the script's arguments follow.
CALL = r"""
. "$0" || exit 125
f=$1; shift
command -v "$f" >/dev/null 2>&1 || exit 0
"$f" "$@"
"""
STDERR_BYTES = 2000   # of a failing script's stderr, in the reason


class JobScripts:
    """The scripts installed in one directory, and running their verify and finalise."""

    def __init__(self, directory: Path | None, timeout: float = 60.0):
        self.directory = Path(directory) if directory else None
        self.timeout = timeout

    def path(self, name: str) -> Path:
        """The installed script NAME, or GeneratorError saying how to install it."""
        if self.directory is None:
            raise GeneratorError(f"job: (script {name}): this scheduler runs no job scripts "
                                 "(start it with --scripts DIR)")
        path = self.directory / name
        if "/" in name or name in ("", ".", "..") or not path.is_file():
            raise GeneratorError(f"job: (script {name}): no script {name} is installed in "
                                 f"the scheduler's {self.directory}; install it there "
                                 "(only installed scripts run)")
        return path

    def check(self, generator) -> None:
        """Refuse a generator whose script is not installed (at load)."""
        script = getattr(generator, "script", None)
        if script:
            self.path(script[0])

    async def verify(self, script: tuple, env: dict, output: bytes) -> str | None:
        """None if the script's verify accepts output; else why not."""
        return await self._call("verify", script, env, output)

    async def finalise(self, script: tuple, env: dict, output: bytes) -> str | None:
        """None if the script's finalise succeeded; else what went wrong."""
        return await self._call("finalise", script, env, output)

    async def _call(self, function: str, script: tuple, env: dict, output: bytes):
        name, args = script[0], script[1:]
        try:
            path = self.path(name)
        except GeneratorError as err:  # removed since the load
            return str(err)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("GERYON_")}
        environ.update(env)
        with tempfile.TemporaryDirectory(prefix="geryon-script-") as scratch:
            proc = await asyncio.create_subprocess_exec(
                "sh", "-c", CALL, str(path), function, *args, cwd=scratch, env=environ,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
            try:
                _, stderr = await asyncio.wait_for(proc.communicate(output), self.timeout)
            except asyncio.TimeoutError:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await proc.wait()
                return (f"script {name}: {function} did not finish within {self.timeout:g} "
                        "s and was killed")
        if proc.returncode == 0:
            return None
        said = stderr[-STDERR_BYTES:].decode(errors="replace").strip()
        return (f"script {name}: {function} said no (exit status {proc.returncode})"
                + (f": {said}" if said else ""))
