"""`rcpu` (also `geryon rcpu`): run a command block on a cpu of the cluster."""

import sys

import click

from geryon.cli import CONTEXT_SETTINGS, registry_option, run, run_async


@click.command(context_settings={**CONTEXT_SETTINGS,
                                 "ignore_unknown_options": False})
@click.option("-c", "--cpu", default="", metavar="CPU",
              help="run on this cpu (its registry name or host) instead of the next in turn")
@click.option("-v", "--verbose", is_flag=True, help="say on stderr which cpu and output disk")
@click.option("--bg", is_flag=True, help="run in the background; print the output disk")
@click.option("--ship", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="send FILE along: the block finds it in /n/client "
              "(repeatable)")
@click.option("--out", default="", metavar="DISK", help="the output disk (default: the "
              "chosen cpu's first .cpu disk that is not an input)")
@click.option("--next", "show_next", is_flag=True,
              help="print the next cpu in turn (and take the turn), as nextcpu did")
@click.option("--gridrc", "show_gridrc", is_flag=True,
              help="print the path of gridrc.sh, to source in your own shell")
@registry_option
@click.argument("block", required=False)
@click.argument("disks", nargs=-1)
def rcpu(cpu, verbose, bg, ship, out, show_next, show_gridrc, registry, block, disks):
    """Run a command block on the next cpu, with the named disks at /n/<disk>.

    The block runs in a private name space on a cpu node: /n holds exactly the disks
    named, read-only, and the output disk $cpudisk, writable; what the block writes there
    is kept only if it exits 0.  Its stdout and stderr come back as it runs, and rcpu
    exits with its status.  Braces are optional: '{ls /n/d0.mbox}', '<ls /n/d0.mbox>' and
    'ls /n/d0.mbox' are the same block.

    \b
    Example:
      rcpu '{ls /n/d0.mbox}' d0.mbox
      rcpu -v '{grep -l From /n/d?.mbox/*/* > $cpudisk/hits}' d0.mbox d1.mbox
      rcpu '{cat /n/*/hits}' d0.cpu d1.cpu
      rcpu --ship count.sh '{/n/client/count.sh /n/d0.mbox}' d0.mbox
    """
    from geryon.config import Config
    from geryon.rcpu.client import Rcpu, stdin_of_caller

    if show_gridrc:  # needs no registry
        from geryon.rcpu.service import GRIDRC
        click.echo(str(GRIDRC))
        return
    if block is None and not show_next:
        raise click.UsageError("give a block to run, e.g. rcpu '{ls /n}'")

    async def direct():
        async with Rcpu(Config.load(registry=registry)) as client:
            return await execute(client, dict(cpu=cpu, verbose=verbose, bg=bg, ship=ship,
                                              out=out, show_next=show_next,
                                              show_gridrc=show_gridrc, block=block,
                                              disks=disks), stdin_of_caller(), 1, 2)

    sys.exit(run_async(direct()))


async def execute(client, params: dict, stdin, stdout: int, stderr: int, cwd=None) -> int:
    """Do what one rcpu command asks with a dialled Rcpu, writing to the descriptors
    given; return its exit status.  The command and the local agent (geryon.rcpu.mux)
    both run commands this way."""
    import os

    from geryon.errors import GeryonError

    def say(fd, text):
        os.write(fd, (text + "\n").encode())

    ship = [os.path.join(cwd or "", path) for path in params["ship"]]
    try:
        if params["show_gridrc"]:
            from geryon.rcpu.service import GRIDRC
            say(stdout, str(GRIDRC))
            return 0
        if params["show_next"]:
            say(stdout, (await client.order())[0].name)
            return 0
        if params["bg"]:
            say(stdout, await _background(client, params, ship))
            return 0

        def started(name, host, disk):
            if params["verbose"]:
                say(stderr, f"rcpu: cpu {name} ({host}), output disk {disk or '(none)'}")

        done = await client.run(params["block"], params["disks"], cpu=params["cpu"],
                                out=params["out"], ship=ship, stdin=stdin, stdout=stdout,
                                stderr=stderr, on_start=started)
    except GeryonError as err:
        say(stderr, f"rcpu: {err}")
        return 1
    if done.exit_signal and done.exit_signal != "PIPE":
        say(stderr, f"rcpu: the block was killed by signal {done.exit_signal}")
    return done.returncode


async def _background(client, params, ship) -> str:
    """Choose the cpu and output disk here, print the disk, and leave the block to a
    detached rcpu of its own whose output still goes where ours goes."""
    import os
    import subprocess
    service = (await client.order(params["cpu"]))[0]
    disk = params["out"] or await client.finddisk(service.attrs.get("host", ""),
                                                  params["disks"])
    argv = [sys.executable, "-m", "geryon.cli.rcpu", "-c", service.name,
            *(["--out", disk] if disk else []),
            *(w for path in ship for w in ("--ship", os.path.abspath(path))), "--",
            params["block"], *params["disks"]]
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    return disk or service.name


def main():
    run(rcpu)


if __name__ == "__main__":
    main()
