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
@click.option("--ship", multiple=True, type=click.Path(exists=True, dir_okay=False),
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

    config = Config.load(registry=registry)
    if show_gridrc:
        from geryon.rcpu.service import GRIDRC
        click.echo(str(GRIDRC))
        return
    if show_next:
        click.echo(run_async(_next(config)))
        return
    if block is None:
        raise click.UsageError("give a block to run, e.g. rcpu '{ls /n}'")
    if bg:
        click.echo(run_async(_background(config, cpu, block, disks, out, ship)))
        return
    sys.exit(run_async(_foreground(config, cpu, block, disks, out, verbose, ship)))


async def _next(config) -> str:
    from geryon.rcpu.client import Rcpu
    async with Rcpu(config) as rcpu:
        return (await rcpu.order())[0].name


async def _foreground(config, cpu, block, disks, out, verbose, ship=()) -> int:
    from geryon.rcpu.client import Rcpu, stdin_of_caller

    def started(name, host, disk):
        if verbose:
            click.echo(f"rcpu: cpu {name} ({host}), output disk {disk or '(none)'}",
                       err=True)

    async with Rcpu(config) as rcpu:
        done = await rcpu.run(block, disks, cpu=cpu, out=out, ship=ship,
                              stdin=stdin_of_caller(),
                              stdout=sys.stdout.buffer, stderr=sys.stderr.buffer,
                              on_start=started)
    if done.exit_signal:
        click.echo(f"rcpu: the block was killed by signal {done.exit_signal}", err=True)
    return done.returncode


async def _background(config, cpu, block, disks, out, ship=()) -> str:
    """Choose the cpu and output disk here, print the disk, and leave the block to a
    detached rcpu of its own whose output still goes where ours goes."""
    import os
    import subprocess
    from geryon.rcpu.client import Rcpu
    async with Rcpu(config) as rcpu:
        service = (await rcpu.order(cpu))[0]
        disk = out or await rcpu.finddisk(service.attrs.get("host", ""), disks)
    argv = [sys.executable, "-m", "geryon.cli.rcpu", "-c", service.name,
            *(["--out", disk] if disk else []),
            *(w for path in ship for w in ("--ship", os.path.abspath(path))), "--", block,
            *disks]
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    return disk or service.name


def main():
    run(rcpu)


if __name__ == "__main__":
    main()
