"""`geryon mapreduce` (run a job) and `geryon jobs` (list them, print a result or a log)."""

import sys

import click

from geryon.cli import CONTEXT_SETTINGS, run_async, setup_logging

# -R is the number of partitions here, as in caerwyn's original, so the registry is
# given by its long option only.
registry_long = click.option("--registry", default="", metavar="ADDR",
                             help="registry dial string (default: config / GERYON_REGISTRY)")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-R", "partitions", default=0, metavar="N",
              help="partitions, so reduces (default: one per cpu)")
@click.option("--combiner", default="", metavar="BLOCK",
              help="run on each map's sorted output before partitioning, e.g. agg")
@click.option("--timeout", default=0.0, metavar="S",
              help="seconds one attempt may run before it is stopped and run elsewhere "
              "(default: no limit)")
@click.option("--attempts", default=4, show_default=True, metavar="N",
              help="failures of one task that fail the job")
@click.option("--slots", default=0, metavar="N",
              help="tasks at once on one cpu (default: its number of cores)")
@click.option("--hash", "hash_name", default="xxh3", show_default=True,
              type=click.Choice(["xxh3", "65599"]), help="intermediate's partition hash")
@click.option("--no-backups", is_flag=True, help="no backup attempts for stragglers")
@click.option("--name", default="", metavar="JOB", help="name the job (default: mr-TIME-XXXX)")
@click.option("--resume", default="", metavar="JOB",
              help="carry on a job whose driver stopped, from its committed tasks")
@click.option("-v", "--verbose", is_flag=True, help="say what happens, on stderr")
@registry_long
@click.argument("blocks", nargs=-1, metavar="MAP REDUCE DISK...")
def mapreduce(partitions, combiner, timeout, attempts, slots, hash_name, no_backups, name,
              resume, verbose, registry, blocks):
    """Run MAP on every input disk and REDUCE on each partition of what the maps wrote.

    MAP sees its disk at /n/DISK and writes `key value` lines (the key is what comes
    before the first tab, or else the first word); they are hashed into R partitions on
    the cpu's output disk.  When every map is done, each partition is gathered from all
    maps, sorted (LC_ALL=C) and given to REDUCE, whose output is the part file.  It
    prints the job's name and the disks holding the parts; `geryon jobs cat JOB` prints
    the result.  Failed, lost or slow tasks run again elsewhere.

    \b
    Example:
      geryon mapreduce 'idx /n/d?.mbox/*/*/*' agg d0.mbox d1.mbox d2.mbox d3.mbox
      geryon mapreduce -R 8 --combiner agg '{idx /n/*.mbox/*/*/*}' '{agg}' d0.mbox d1.mbox
      geryon jobs cat mr-20250101-120000-1a2b | sort -k2nr | head
      geryon mapreduce --resume mr-20250101-120000-1a2b
    """
    from geryon.config import Config
    from geryon.mapreduce.driver import MapReduce
    from geryon.mapreduce.progress import Progress

    setup_logging(verbose)
    if resume:
        if blocks:
            raise click.UsageError("--resume JOB takes no blocks or disks: the job has them")
    elif len(blocks) < 3:
        raise click.UsageError("give MAP, REDUCE and at least one disk, e.g. geryon "
                               "mapreduce 'idx /n/d?.mbox/*/*/*' agg d0.mbox")
    config = Config.load(registry=registry)
    driver = MapReduce(config, progress=Progress(sys.stderr), verbose=verbose)
    if resume:
        result = run_async(driver.resume(resume))
    else:
        result = run_async(driver.run(blocks[0], blocks[1], blocks[2:], R=partitions,
                                      combiner=combiner, timeout=timeout, attempts=attempts,
                                      slots=slots, name=name, hash=hash_name,
                                      backups=not no_backups))
    show_counters(result.counters)
    if not result.ok:
        if result.stderr.strip():
            click.echo("its stderr ended:\n" + indent(result.stderr.strip()[-2000:]), err=True)
        click.echo(f"mapreduce: job {result.name} {result.state}: {result.why or 'stopped'}"
                   f" (log: geryon jobs log {result.name})", err=True)
        sys.exit(1)
    click.echo(result.name)
    click.echo(" ".join(result.disks))


def indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def show_counters(counters: dict) -> None:
    if not counters:
        return
    click.echo("counters:", err=True)
    for (group, name), value in sorted(counters.items()):
        click.echo(f"  {group}: {name}: {value}", err=True)


class JobsGroup(click.Group):
    def format_usage(self, ctx, formatter):
        formatter.write_usage("geryon jobs", "[cat JOB | log JOB]")


@click.group(cls=JobsGroup, context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@registry_long
@click.pass_context
def jobs(ctx, registry):
    """List recent and running mapreduce jobs with their state.

    Jobs run from here are read from $GERYON_HOME/jobs; jobs run elsewhere from the
    registry's `svc mapreduce` entries.  (Owen's jobs: `geryon owen jobs`.)

    \b
    Example:
      geryon jobs
      geryon jobs cat mr-20250101-120000-1a2b
      geryon jobs log mr-20250101-120000-1a2b
      geryon jobs rm mr-20250101-120000-1a2b
    """
    ctx.obj = registry
    if ctx.invoked_subcommand is not None:
        return
    import time

    from geryon.config import Config
    from geryon.errors import GeryonError
    from geryon.mapreduce.parts import local_lines, merge, registry_lines
    from geryon.registry.client import dial_registry

    config = Config.load(registry=registry)

    async def remote():
        try:
            async with await dial_registry(config) as reg:
                return await registry_lines(reg)
        except GeryonError as err:
            click.echo(f"jobs: the registry could not be asked ({err}); jobs run here only",
                       err=True)
            return []

    lines = merge(local_lines(), run_async(remote()) if config.registry else [])
    click.echo(f"{'JOB':<28} {'STATE':<8} {'PHASE':<8} {'DONE':>7}  {'STARTED':<19} "
               f"{'SECONDS':>8}")
    for line in lines:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line.started))
        click.echo(f"{line.name:<28} {line.state:<8} {line.phase:<8} {line.done:>7}  "
                   f"{started:<19} {line.elapsed:>8.1f}")


@jobs.command("cat", context_settings=CONTEXT_SETTINGS)
@click.argument("job")
@click.pass_obj
def jobs_cat(registry, job):
    """Print a done job's result: its parts in partition order.

    \b
    Example:
      geryon jobs cat mr-20250101-120000-1a2b | sort -k2nr | head
    """
    from geryon.config import Config
    from geryon.mapreduce.parts import write_parts
    from geryon.ns.ca import Identity
    from geryon.registry.client import dial_registry

    config = Config.load(registry=registry)

    async def main():
        async with await dial_registry(config) as reg:
            return await write_parts(reg, Identity.load(), job,
                                     click.get_binary_stream("stdout"),
                                     float(config.keepalive))

    run_async(main())


@jobs.command("rm", context_settings=CONTEXT_SETTINGS)
@click.argument("names", metavar="JOB...", nargs=-1, required=True)
@click.pass_obj
def jobs_rm(registry, names):
    """Remove jobs that are not running: their parts and copies from every cpu disk, their
    registry entries and their state here.  A cpu disk whose node is away keeps its
    files; the job stays listed, to be removed again when the node is back.

    \b
    Example:
      geryon jobs rm mr-20250101-120000-1a2b
    """
    from geryon.config import Config
    from geryon.errors import GeryonError
    from geryon.mapreduce.driver import MapReduce

    config = Config.load(registry=registry)
    runner = MapReduce(config)
    failed = False
    for name in names:
        try:
            left = run_async(runner.remove(
                name, lambda text: click.echo(f"jobs rm: {name}: {text}", err=True)))
        except GeryonError as err:
            click.echo(f"jobs rm: {err}", err=True)
            failed = True
            continue
        if left:
            click.echo(f"jobs rm: {name}: files left on {' '.join(left)}; run it again when "
                       "their nodes are back", err=True)
            failed = True
        else:
            click.echo(f"removed {name}")
    if failed:
        raise SystemExit(1)


@jobs.command("log", context_settings=CONTEXT_SETTINGS)
@click.argument("job")
def jobs_log(job):
    """Print a job's log: every attempt, where it ran and how it ended.

    \b
    Example:
      geryon jobs log mr-20250101-120000-1a2b | grep -v done
    """
    from geryon.mapreduce.state import JobDir

    job_dir = JobDir.of(job)
    job_dir.spec()  # JobError when there is no such job
    click.echo(job_dir.log_text(), nl=False)
