"""`geryon sched`, `geryon worker` and `geryon owen ...`: Owen's scheduler, its workers,
and the controller's commands (docs/owen.md, docs/sched.md)."""

import sys

import click

from geryon.cli import (CONTEXT_SETTINGS, announce_ready, ready_option, registry_option,
                        run_async, serve_until_stopped, setup_logging)

sched_option = click.option("--sched", "-S", default="", metavar="ADDR",
                            help="scheduler dial string (default: GERYON_SCHED, the "
                                 "config, or the registry's svc infsched entry)")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-a", "--address", default="tcp!*!infsched", show_default=True,
              help="dial string to listen on (port 0: any free port)")
@click.option("--state", default="", help="directory for jobs, tasks and results "
              "(default: $GERYON_HOME/sched)")
@click.option("--scripts", default="", help="directory of the job scripts that jobs may "
              "name with (script NAME) (default: STATE/scripts)")
@registry_option
@click.option("--port-file", default="", help="write the port listened on to this file")
@ready_option
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
def sched(address, state, scripts, registry, port_file, ready_file, verbose):
    """Serve Owen's scheduler: the labour exchange, as a file tree over SFTP.

    Workers dial in and pull tasks; controllers post jobs under admin/.  Every job, task
    and result is kept in SQLite in --state, so a restarted scheduler carries on.  With
    a registry configured it registers itself as `svc infsched`.  A job's (script NAME)
    runs only a script installed in --scripts.

    \b
    Example:
      geryon sched -a 'tcp!*!6678'
      sftp -P 6678 alice@gridhost   # then: ls admin, get admin/jobs
    """
    from pathlib import Path

    from geryon.config import Config, home
    from geryon.ns.ca import Identity
    from geryon.owen.server import SchedServer

    setup_logging(verbose)
    config = Config.load(registry=registry)

    async def main():
        server = SchedServer(Path(state) if state else home() / "sched", Identity.load(),
                             config=config, scripts=Path(scripts) if scripts else None)
        await serve_until_stopped(server, address, "infsched", "scheduler", port_file,
                                  ready_file)

    run_async(main(), daemon=True)


@click.command(context_settings=CONTEXT_SETTINGS)
@sched_option
@registry_option
@click.option("--root", default="", help="the worker's directory: its <type>.job scripts, "
              "work/, log/ and pending/ (default: $GERYON_HOME/worker)")
@click.option("--name", default="", help="node name to give the scheduler (default: "
              "this machine's identity)")
@click.option("--slots", default=0, type=click.IntRange(0, 4096),
              help="tasks run at once (default: the number of cores)")
@click.option("--install", multiple=True, metavar="TYPE",
              help="copy TYPE.job from the shipped library into the root first "
                   "(repeatable; e.g. test, exec)")
@ready_option
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
def worker(sched, registry, root, name, slots, install, ready_file, verbose):
    """Work for an Owen scheduler: dial out, say what this node can do, run tasks.

    Only task types whose script is in the root are ever run here: `TYPE.job` defines
    `runtask` (and `submit`, `killtask`, `exclusive` if it likes).  The worker opens no
    port; it dials the scheduler and dials again when the connection is lost, handing
    in the results it finished meanwhile.

    \b
    Example:
      geryon worker --install test --sched 'tcp!gridhost!6678'
    """
    from pathlib import Path

    from geryon.config import Config, home
    from geryon.owen.worker import Worker, install_script

    setup_logging(verbose)
    config = Config.load(registry=registry, sched=sched)
    where = Path(root) if root else home() / "worker"
    where.mkdir(parents=True, exist_ok=True)
    for jobtype in install:
        install_script(jobtype, where)

    async def main():
        w = Worker(where, name=name, slots=slots, config=config)
        announce_ready(ready_file, str(where))
        await w.run()

    run_async(main(), daemon=True)


@click.group(context_settings=CONTEXT_SETTINGS)
def owen():
    """Post jobs to the Owen scheduler and follow them.

    \b
    Example:
      geryon owen start filesplit -l mytasks test md5sum    # prints the job number
      geryon owen wait 1                                     # then: cat mytasks.result
    """


def controlled(sched, body):
    """Run body(controller) on a connection to the scheduler."""
    from geryon.config import Config
    from geryon.owen.control import Controller

    async def main():
        c = await Controller.connect(Config.load(sched=sched))
        try:
            return await body(c)
        finally:
            await c.close()

    return run_async(main())


def _post(sched, argv, description, start):
    async def body(c):
        return await c.job(list(argv), description, start=start)
    click.echo(controlled(sched, body))


@owen.command(context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True})
@sched_option
@click.option("-d", "--description", default="", help="a description for the monitors")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def start(sched, description, argv):
    """Make a job, load its generator and start it; print its number.

    The input files the generator names travel to the scheduler.

    \b
    Example:
      geryon owen start filesplit -l mytasks test md5sum
      geryon owen start job '(job (file (path f) (split lines) (kind stdin)) (task exec md5sum))'
    """
    _post(sched, argv, description, True)


@owen.command(context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True})
@sched_option
@click.option("-d", "--description", default="", help="a description for the monitors")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def job(sched, description, argv):
    """Make a job and load its generator, without starting it; print its number.

    \b
    Example:
      geryon owen job filesplit -l mytasks test md5sum && geryon owen ctl 1 start
    """
    _post(sched, argv, description, False)


@owen.command(context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True})
@sched_option
@click.argument("id")
@click.argument("message", nargs=-1, required=True, type=click.UNPROCESSED)
def ctl(sched, id, message):
    """Send a control message to job ID (or to admin/ctl with ID `admin`).

    Messages: start, stop, teardown, delete, priority high|low|N, group
    all|none|set|add|del NODES, kick, deadline SECONDS; admin: dump, group ..., teardown,
    delnode NODES, unblacklist NODES.

    \b
    Example:
      geryon owen ctl 3 priority high
      geryon owen ctl admin unblacklist node7
    """
    async def body(c):
        if id == "admin":
            return await c.admin_ctl(list(message))
        await c.ctl(id, list(message))
    out = controlled(sched, body)
    if out:
        click.echo(out, nl=False)


def _cat(sched, path):
    from geryon.quote import for_terminal

    async def body(c):
        return await c.read(path)
    for line in controlled(sched, body).splitlines():
        click.echo(for_terminal(line))


@owen.command(context_settings=CONTEXT_SETTINGS)
@sched_option
def jobs(sched):
    """List jobs: ID STATE COMPLETE TOTAL OWNER PRIORITY GENERATOR ARGS...

    \b
    Example:
      geryon owen jobs
    """
    _cat(sched, "/admin/jobs")


@owen.command(context_settings=CONTEXT_SETTINGS)
@sched_option
def nodes(sched):
    """List worker nodes: NAME then `attr value` pairs (state, since, completed, ...).

    \b
    Example:
      geryon owen nodes
    """
    _cat(sched, "/admin/nodes")


@owen.command(context_settings=CONTEXT_SETTINGS)
@sched_option
@click.argument("id")
def monitor(sched, id):
    """Print job ID's status now and at every change, until it is done.

    \b
    Example:
      geryon owen monitor 3
    """
    from geryon.quote import join

    async def body(c):
        async for status in c.monitor(id):
            click.echo(join([w for kv in status.items() for w in kv]))
    controlled(sched, body)


@owen.command(context_settings=CONTEXT_SETTINGS)
@sched_option
@click.option("-o", "--output", default="", help="write the result here (default: the "
              "generator's result file, e.g. FILE.result)")
@click.argument("id")
def wait(sched, output, id):
    """Wait for job ID to complete and bring its result back.

    \b
    Example:
      geryon owen wait 3 && cat mytasks.result
    """
    from geryon.owen.control import result_path
    bar = sys.stderr.isatty()

    def progress(status):
        if bar:
            total, done = int(status.get("total", 0)), int(status.get("complete", 0))
            width = 30
            filled = width * done // total if total else 0
            click.echo(f"\rjob {id} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
                       nl=False, err=True)

    async def body(c):
        argv = await c.argv(id)
        try:
            await c.wait(id, progress)
        finally:
            if bar:
                click.echo("", err=True)
        return await c.results(id, output or result_path(argv, int(id)))
    click.echo(controlled(sched, body))


@owen.command(context_settings=CONTEXT_SETTINGS)
@sched_option
@click.argument("id")
def results(sched, id):
    """Write job ID's result so far to standard output.

    \b
    Example:
      geryon owen results 3 | geryon owen rec2file -d out
    """
    async def body(c):
        return await c.results(id)
    sys.stdout.buffer.write(controlled(sched, body))


@owen.command(context_settings=CONTEXT_SETTINGS)
@sched_option
@click.argument("id")
def why(sched, id):
    """Say in plain words why job ID is where it is (not running, a task failing).

    \b
    Example:
      geryon owen why 3
    """
    _cat(sched, f"/admin/{id}/why")


@owen.command(context_settings=CONTEXT_SETTINGS)
@click.argument("files", nargs=-1, required=True)
def file2rec(files):
    """Write one record per FILE to standard output: `data <len> <name>` and its bytes.

    \b
    Example:
      geryon owen file2rec /tmp/task/* > mytasks
    """
    from geryon.owen.records import file2rec as records
    out = sys.stdout.buffer
    for piece in records(files):
        out.write(piece)


@owen.command(context_settings=CONTEXT_SETTINGS)
@click.option("-n", "numbered", is_flag=True, help="name files by record number, not name")
@click.option("-d", "directory", default=".", show_default=True, help="write files here")
def rec2file(numbered, directory):
    """Turn the records on standard input back into files.

    \b
    Example:
      geryon owen results 3 | geryon owen rec2file -n -d out
    """
    from geryon.owen.records import rec2file as files
    files(sys.stdin.buffer, directory, names=not numbered)
