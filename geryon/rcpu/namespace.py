"""The private mount name space a block runs in, as a shell script for `unshare`.

Theory of operation.  The cpu service starts every block as

    unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
        [--user --map-root-user] -- bash -c SETUP

so that the block's mounts are seen by it alone, its processes form a pid name space
(killing its init kills everything the block started, and `unshare --kill-child` takes it
down if the service's child dies), and an unprivileged node gets the mount rights a user
name space grants it, never more than its own user's.

The name space's init is INIT, a few lines of Python, not the block's shell: a pid 1 is
immune to signals it does not handle, so a block run as pid 1 could not die of `kill -9
$$`.  INIT runs the shell as its child, reaps orphans, and when the shell ends kills what
is left and writes how the shell ended (`exit N` or `signal N`) on the descriptor named
by its first argument, which the service reads to report an exit status or a death by
signal exactly.

SETUP mounts a small tmpfs on /n (so `ls /n` shows exactly what the block was given), binds
each input disk's files read-only at /n/<disk>, puts the output disk at /n/<cpudisk> as an
overlay whose lower layer is that disk's files and whose upper layer is the block's own
scratch directory (what the block writes lands there and is committed to the chunk only if
the block exits 0; geryon.rcpu.commit), binds shipped files at /n/client, and then runs the
block with bash after sourcing gridrc.sh.  Everything here is text: no I/O.
"""

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

MOUNT_ROOT = "/n"

INIT = """
import os, signal, sys
report = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execvp(sys.argv[2], sys.argv[2:])
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda n, f: os.kill(pid, n))
while True:
    try:
        child, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if child == pid:
        break
try:
    os.kill(-1, signal.SIGKILL)
except ProcessLookupError:
    pass
if os.WIFSIGNALED(status):
    os.write(report, b"signal %d" % os.WTERMSIG(status))
    os._exit(128 + os.WTERMSIG(status))
os.write(report, b"exit %d" % os.WEXITSTATUS(status))
os._exit(os.WEXITSTATUS(status))
"""


@dataclass(frozen=True)
class Overlay:
    """The output disk: its files (lower, read-only), the block's scratch (upper, work)."""

    lower: Path
    upper: Path
    work: Path


@dataclass
class Namespace:
    """What one block sees."""

    inputs: dict[str, Path] = field(default_factory=dict)  # disk name -> its files
    output: tuple[str, Overlay] | None = None              # cpu disk name, its overlay
    client: Path | None = None                               # shipped files, at /n/client
    rc_files: tuple[Path, ...] = ()                          # sourced before the block
    env: dict[str, str] = field(default_factory=dict)

    def unshare_argv(self, block: str, unprivileged: bool, report_fd: int) -> list[str]:
        """The command that runs setup() and then the block in a fresh mount and pid
        name space; how the block ended is written on report_fd."""
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                "--propagation", "private"]
        if unprivileged:
            argv += ["--user", "--map-root-user"]
        return [*argv, "--", sys.executable, "-I", "-S", "-c", INIT, str(report_fd), "bash", "-c",
                self.setup() + block + "\n"]

    def setup(self) -> str:
        """The script that builds the name space, then becomes the block's shell."""
        q = shlex.quote
        lines = ["set -e",
                 f"mount -t tmpfs -o size=1m,mode=0755 geryon-n {MOUNT_ROOT}"]
        for name, files in sorted(self.inputs.items()):
            target = q(f"{MOUNT_ROOT}/{name}")
            lines += [f"mkdir {target}", f"mount --bind {q(str(files))} {target}",
                      f"mount -o remount,bind,ro {target}"]
        if self.output is not None:
            name, layers = self.output
            target = q(f"{MOUNT_ROOT}/{name}")
            options = (f"lowerdir={layers.lower},upperdir={layers.upper},"
                       f"workdir={layers.work}")
            lines += [f"mkdir {target}", f"mount -t overlay geryon-out -o {q(options)} {target}"]
        if self.client is not None:
            target = q(f"{MOUNT_ROOT}/client")
            lines += [f"mkdir {target}", f"mount --bind {q(str(self.client))} {target}",
                      f"mount -o remount,bind,ro {target}"]
        lines += [f"mount -o remount,ro {MOUNT_ROOT}", "set +e"]
        lines += [f"export {key}={q(value)}" for key, value in sorted(self.env.items())]
        lines += [f"if [ -r {q(str(rc))} ]; then . {q(str(rc))}; fi" for rc in self.rc_files]
        return "\n".join(lines) + "\n"
