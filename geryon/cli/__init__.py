"""The `geryon` command: a thin layer that builds library objects, calls them and turns
GeryonError into a message and exit status 1.

Subcommands live in modules of this package and are imported only when they run, so
`geryon -h` stays fast (see bench/README.md).
"""

import importlib
import sys

import click

from geryon.errors import GeryonError

# command name -> (module in geryon.cli, attribute, one-line help shown by `geryon -h`)
COMMANDS = {
    "ca": ("ca", "ca", "Run the cluster certificate authority: init, sign, token."),
    "join": ("ca", "join", "Join this machine to a cluster with a one-time token."),
    "registry": ("registry", "registry", "Serve the registry of live services."),
    "register": ("registry", "register", "Run a server and register it while it runs."),
    "reglisten": ("registry", "reglisten", "Listen, run a command per connection, register it."),
    "regquery": ("registry", "regquery", "Print the registered services that match."),
    "regwatch": ("registry", "regwatch", "Print one line per change in the registry."),
    "chunk": ("chunk", "chunk", "Make and inspect chunk files (64 MiB disks)."),
    "node": ("disks", "node", "Serve this machine's chunk disks (and register them)."),
    "refresh": ("disks", "refresh", "Put the disks named in ndb/cluster into the registry."),
    "load": ("disks", "load", "Split local files across new disks of an application."),
    "disks": ("disks", "disks", "List the disks and replicas; replicate, promote, check."),
    "ls": ("disks", "ls", "List a directory of a disk: geryon ls d0.mbox:dir"),
    "cat": ("disks", "cat", "Print files of a disk: geryon cat d0.mbox:path"),
    "get": ("disks", "get", "Copy files (or a whole disk) from a disk to here."),
    "ndb": ("ndb", "ndb", "Query ndb (attrdb) files such as ndb/cluster."),
    "demo": ("demo", "demo", "Start a whole cluster on this machine and show it working."),
    "sched": ("owen", "sched", "Serve Owen's scheduler, the labour exchange."),
    "worker": ("owen", "worker", "Work for an Owen scheduler: pull tasks and run them."),
    "owen": ("owen", "owen", "Post Owen jobs and follow them: start, wait, jobs, why..."),
    "web": ("web", "web", "Serve the Node Monitor, Job Monitor and cluster view on the web."),
    "rcpu": ("rcpu", "rcpu", "Run a command block on a cpu with disks at /n: rcpu '{ls /n}'"),
    "mapreduce": ("mapreduce", "mapreduce", "Run a MapReduce job of shell blocks over disks."),
    "jobs": ("mapreduce", "jobs", "List mapreduce jobs; print a job's result or log."),
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# The option every daemon takes: tests and scripts wait for this file instead of sleeping.
ready_option = click.option("--ready", "ready_file", default="", metavar="FILE",
                            help="write FILE once serving (it holds the address served, if any)")


def announce_ready(path: str, text: str = "") -> None:
    """Write the ready file atomically; called from inside run_async, so the daemon's
    signal handlers are already installed when a waiter sees it."""
    if not path:
        return
    import os
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


async def serve_until_stopped(server, address: str, service: str, what: str,
                              port_file: str = "", ready_file: str = "") -> None:
    """Start a daemon's server on a dial string, say where it serves (port file, ready
    file, stderr), and serve until the process is told to stop."""
    from pathlib import Path

    from geryon import dial
    from geryon.ns.server import wait_forever
    await server.start(address)
    if port_file:
        Path(port_file).write_text(f"{server.port}\n")
    served = f"tcp!{dial.parse(address, service).host}!{server.port}"
    announce_ready(ready_file, served)
    click.echo(f"{what} on {served}", err=True)
    try:
        await wait_forever()
    finally:
        await server.close()


# The option every command that talks to the registry takes.
registry_option = click.option("--registry", "-R", default="", metavar="ADDR",
                               help="registry dial string (default: config / GERYON_REGISTRY)")


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"geryon.cli.{module}"), attr)

    def format_commands(self, ctx, formatter):
        # Listing help must not import every subcommand: use the table's one-liners.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="geryon")
def geryon():
    """A small, shell-native compute cluster.

    \b
    Example:
      geryon ca init && geryon registry -a 'tcp!*!6675' &
      geryon regquery svc rstyx
    """


def run(command, args=None):
    """Run a click command, turning GeryonError into a one-line message and exit 1."""
    try:
        status = command.main(args=args, standalone_mode=False)
    except GeryonError as err:
        click.echo(f"{command.name or 'geryon'}: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def main():
    run(geryon)




def run_async(coro, daemon: bool = False):
    """Run a coroutine to completion and return its result.  SIGTERM and SIGINT cancel it
    (so its finally clauses clean up) and end the process: a daemon asked to stop by
    SIGTERM exits 0; otherwise the status is 128 + the signal's number, as a shell's."""
    import asyncio
    import signal

    caught = []

    async def guarded():
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda sig=sig: (caught.append(sig), task.cancel()))
        return await coro

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if not caught:
            raise
        sys.exit(0 if daemon and caught[0] == signal.SIGTERM else 128 + caught[0])


def setup_logging(verbose: bool) -> None:
    """Only the entry point configures logging: warnings, or everything with -v."""
    import logging
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not verbose:
        logging.getLogger("asyncssh").setLevel(logging.ERROR)
