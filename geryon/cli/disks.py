"""`geryon node`, `refresh`, `load`, `disks`, `ls`, `cat`, `get`: chunk disks in a cluster."""

import sys

import click

from geryon.cli import (CONTEXT_SETTINGS, announce_ready, ready_option, registry_option,
                        run_async, setup_logging)

ndb_option = click.option("--ndb", default="", metavar="FILE",
                          help="the cluster's ndb file (default: config ndb, "
                               "$GERYON_HOME/ndb/cluster)")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--chunks", "chunks_dir", default="", type=click.Path(file_okay=False),
              help="directory holding chunk files chunk0, chunk1, ... (data disks)")
@click.option("--new-chunks", default=0, help="first create this many empty chunks there")
@click.option("--chunk-size", default="64M", show_default=True,
              help="capacity of chunks made by --new-chunks (K, M, G suffixes)")
@click.option("--cpu", is_flag=True, help="also run the cpu service: command blocks by rcpu")
@click.option("--state", "state_dir", default="", type=click.Path(file_okay=False),
              help="where the cpu service keeps its output chunks and scratch "
                   "(default: $GERYON_HOME/node/NAME)")
@click.option("--cpu-chunks", default=2, show_default=True,
              help="output chunks (cpu0, cpu1, ...) the cpu service keeps")
@click.option("--cpu-chunk-size", default="64M", show_default=True,
              help="capacity of each output chunk")
@click.option("--cache-size", default="2G", show_default=True,
              help="bytes of disks the cpu service keeps unpacked for blocks")
@click.option("--worker", is_flag=True, help="also run an Owen worker that pulls tasks")
@click.option("--worker-root", default="", type=click.Path(file_okay=False),
              help="the worker's task scripts and work (default: $GERYON_HOME/worker)")
@click.option("--sched", default="", metavar="ADDR",
              help="the worker's scheduler (default: GERYON_SCHED, config, registry)")
@click.option("--install", multiple=True, metavar="TYPE",
              help="install this task type from the shipped library for the worker "
                   "(repeatable), e.g. --install test")
@click.option("--name", default="", help="this node's name, the HOST of master=HOST!chunkN "
              "in ndb (default: the host name)")
@click.option("--listen", default="", help="address to serve on (default: the one the "
              "registry sees us at)")
@registry_option
@ready_option
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
def node(chunks_dir, new_chunks, chunk_size, cpu, state_dir, cpu_chunks, cpu_chunk_size,
         cache_size, worker, worker_root, sched, install, name, listen, registry,
         ready_file, verbose):
    """Serve this machine's chunk disks and cpu service, and keep them registered.

    Each chunk file in the --chunks directory is served as a file tree (over SFTP) on a
    port of its own and registered as `tcp!ADDR!PORT id chunkN host NAME resource kfs size
    S used U free F`.  With --cpu the node also runs command blocks sent by rcpu
    (docs/cpu.md), registered as `svc rstyx`, with output chunks of its own registered
    with `cpudisk 1` (refresh names them dN.cpu).  The entries go when the node stops,
    and come back if the registry restarts.

    \b
    Example:
      geryon node --chunks /var/lib/geryon/chunks --new-chunks 4 --name node0 --cpu
    """
    import socket
    from pathlib import Path

    from geryon.chunkfs.sizes import parse_size
    from geryon.config import Config, ConfigError, home
    from geryon.node import CpuSettings, Node, WorkerSettings, create_chunks

    setup_logging(verbose)
    if not chunks_dir and not cpu and not worker:
        raise ConfigError("a node serves chunk disks (--chunks DIR), a cpu (--cpu), an Owen "
                          "worker (--worker), or any of them together; give at least one")
    if new_chunks and not chunks_dir:
        raise ConfigError("--new-chunks makes chunks in the --chunks directory; give it")
    name = name or socket.gethostname()
    directory = Path(chunks_dir) if chunks_dir else None
    if new_chunks:
        made = create_chunks(directory, new_chunks, parse_size(chunk_size))
        click.echo(f"made {len(made)} chunks in {directory}", err=True)
    settings = None
    if cpu:
        settings = CpuSettings(Path(state_dir) if state_dir else home() / "node" / name,
                               cpu_chunks, parse_size(cpu_chunk_size),
                               cache_limit=parse_size(cache_size))

    async def main():
        served = Node(directory, name=name, config=Config.load(registry=registry),
                      listen_host=listen, cpu=settings,
                      worker=WorkerSettings(Path(worker_root) if worker_root else
                                            home() / "worker", sched, install)
                      if worker else None)
        try:
            await served.start()  # returns once every chunk is registered
            announce_ready(ready_file, "\n".join([f"node {served.name}",
                                                   *(c.name for c in served.chunks),
                                                   *([f"cpu {served.cpu_name}"]
                                                     if served.cpu_name else [])]))
            click.echo(f"node {served.name}: serving {len(served.chunks)} chunks"
                       f"{', cpu ' + served.cpu_name if served.cpu_name else ''}", err=True)
            await served.run()
        finally:
            await served.close()

    run_async(main(), daemon=True)


@click.command(context_settings=CONTEXT_SETTINGS)
@ndb_option
@registry_option
@click.option("--watch", is_flag=True, help="keep going: refresh on every registry or ndb change")
@click.option("--ready", "ready_file", default="", metavar="FILE",
              help="with --watch: write FILE once the registry is dialled and refreshed, "
                   "and again after each time it is dialled again")
@click.option("-v", "--verbose", is_flag=True, help="print each change made")
def refresh(ndb, registry, watch, ready_file, verbose):
    """Make the registry's disk entries match the ndb file and the live chunks.

    For each disk the ndb file names whose chunk is live, a persistent entry
    `dN.app host H automount 1 persist 1 addr tcp!H!P id chunkN [replica R]`; entries of
    disks no longer named, or whose chunk is gone, are removed.  A disk whose master no
    node serves is noted on standard error.  Quiet when all is well; exit status 1 and a
    message naming the disk when a change fails.  Safe to run from cron.

    \b
    Example:
      geryon refresh
      geryon refresh --watch &     # current within 2 s of any change
    """
    from geryon.config import Config
    from geryon.disks.refresh import Refresher, follow
    from geryon.registry.client import dial_registry

    setup_logging(False)  # -v prints the changes themselves, not the machinery's log
    config = Config.load(registry=registry, ndb=ndb)
    said = {"notes": []}  # a watch repeats notes only when they change

    def report(outcome):
        if not isinstance(outcome, Exception):  # an error the watch has logged: it goes on
            for action in outcome.actions if verbose else ():
                click.echo(str(action))
            if outcome.unserved != said["notes"]:
                for note in outcome.unserved:
                    click.echo(f"refresh: {note}", err=True)
                said["notes"] = outcome.unserved

    def dialled(count):
        announce_ready(ready_file, f"{config.registry or 'the registry found by mDNS'}\n"
                                   f"dialled {count}")

    async def once():
        async with await dial_registry(config) as client:
            report(await Refresher(client, config.ndb_path).refresh())

    def lost(err):
        click.echo(f"refresh: {err or 'the registry closed the connection'}; trying again",
                   err=True)

    run_async(follow(lambda: dial_registry(config), config.ndb_path, report, lost, dialled)
              if watch else once(), daemon=watch)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--app", required=True, help="application name: disks are d0.APP, d1.APP, ...")
@click.option("--split-lines", is_flag=True, help="split files larger than a disk at line "
              "boundaries into PATH.000, PATH.001, ...")
@click.option("--level", default=1, show_default=True, type=click.IntRange(1, 19),
              help="zstd level: 1 is fast (as zstd -1), higher fits more on each disk")
@click.option("--replicas", default=None, type=click.IntRange(0, 8), metavar="N",
              help="copies of each disk on other nodes, kept in sync by following "
                   "(default: 1 where the cluster has another node with a spare chunk)")
@ndb_option
@registry_option
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
def load(app, split_lines, level, replicas, ndb, registry, sources):
    """Split directories, tar files or files across new disks of an application.

    Files are packed in order into 64 MiB disks on nodes with empty chunks, spread across
    the nodes; each disk is named in the ndb file and the registry is refreshed.  Paths on
    the disks are relative to each directory given.  A file larger than a disk is refused
    (or split with --split-lines).  Each disk gets --replicas copies on other nodes
    (d0.APP.r1, ...), and is reported once they are in sync:
    `DISK NODE FILES files SIZE [replica NAME NODE]...`.

    \b
    Example:
      geryon load --app mbox ~/Mail
      geryon load --app mbox --replicas 2 ~/Mail
      geryon disks
    """
    from geryon.chunkfs.sizes import format_size
    from geryon.config import Config
    from geryon.disks.load import load as load_disks
    from geryon.disks.sources import gather
    from geryon.registry.client import dial_registry

    config = Config.load(registry=registry, ndb=ndb)
    skipped = []
    items = gather(sources, skipped)
    if skipped:
        click.echo(f"load: leaving out {len(skipped)} that are not plain files (links, "
                   f"devices, FIFOs), e.g. {skipped[0]}", err=True)
    bar = click.progressbar(length=sum(item.size for item in items), label="loading",
                            file=sys.stderr) if sys.stderr.isatty() else None

    async def main():
        async with await dial_registry(config) as client:
            return await load_disks(client, items, app, config.ndb_path, split=split_lines,
                                    level=level, keepalive=float(config.keepalive),
                                    progress=bar.update if bar else None,
                                    replicas=replicas)

    if bar:
        with bar:
            report = run_async(main())
    else:
        report = run_async(main())
    if report.already:
        click.echo(f"load: {report.already} files already on disks of {app} were passed over",
                   err=True)
    for note in report.short:
        click.echo(f"load: {note}", err=True)
    for disk in report.disks:
        copies = "".join(f" replica {name} {host}" for name, host in disk.replicas)
        click.echo(f"{disk.disk} {disk.host} {disk.files} files {format_size(disk.bytes)}"
                   f"{copies}")


@click.group(context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@ndb_option
@registry_option
@click.pass_context
def disks(ctx, ndb, registry):
    """List the disks: name, node, chunk, fill and state; replicas beneath their master.

    State is `live` (registered, its chunk served), `down` (named in the ndb file but its
    chunk is not served: refresh has dropped it), `unregistered` (chunk served, refresh
    has not run yet) or `stale` (registered, but its chunk is gone or the ndb file no
    longer names it: refresh will drop it).  A disk with replicas says `serving` on the
    copy the registry points at; a replica is `in sync`, `behind by N bytes` or `down`.

    \b
    Example:
      geryon disks
      geryon disks replicate d0.mbox --on node2
      geryon disks check
    """
    ctx.obj = {"ndb": ndb, "registry": registry}
    if ctx.invoked_subcommand is not None:
        return
    from geryon.chunkfs.sizes import format_size
    from geryon.disks.cluster import disk_states

    config, dial = _config(ctx)

    async def main():
        async with await dial() as client:
            return await disk_states(client, config.ndb_path)

    rows = [("DISK", "NODE", "CHUNK", "FILL", "STATE")]
    for disk in run_async(main()):
        fill = "-" if disk.used is None else \
            f"{format_size(disk.used)}/{format_size(disk.size)} " \
            f"{100 * disk.used // max(disk.size, 1)}%"
        rows.append(("  " + disk.name if disk.replica_of else disk.name, disk.host,
                     disk.chunk, fill, disk.state))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _config(ctx):
    """The configuration the `disks` group's options give, and how to dial the registry."""
    from geryon.config import Config
    from geryon.registry.client import dial_registry
    config = Config.load(registry=ctx.obj["registry"], ndb=ctx.obj["ndb"])
    return config, lambda: dial_registry(config)


def _then_refresh(ctx, work):
    """Run work(registry client, config) and then a refresh, as one command of the group."""
    from geryon.disks.refresh import Refresher
    config, dial = _config(ctx)

    async def main():
        async with await dial() as client:
            done = await work(client, config)
            await Refresher(client, config.ndb_path).refresh()
            return done

    return run_async(main())


@disks.command(context_settings=CONTEXT_SETTINGS)
@click.option("--on", "node", default="", metavar="NODE",
              help="the node to hold the copy (default: the one with most spare chunks)")
@click.argument("disk")
@click.pass_context
def replicate(ctx, disk, node):
    """Add a replica of DISK on another node, and wait until it is in sync.

    An empty chunk the ndb file does not name becomes DISK.rN, named in the ndb file
    (run this where the ndb file is, as load and refresh), follows DISK's master from then
    on, and is registered by the refresh that ends the command.

    \b
    Example:
      geryon disks replicate d0.mbox --on node2
    """
    from geryon.disks.replicas import replicate as add

    placed = _then_refresh(ctx, lambda client, config: add(
        client, config.ndb_path, disk, node, keepalive=float(config.keepalive)))
    click.echo(f"{placed.name} {placed.host} {placed.chunk} in sync with {disk}")


@disks.command(context_settings=CONTEXT_SETTINGS)
@click.argument("disk")
@click.argument("node")
@click.pass_context
def promote(ctx, disk, node):
    """Make DISK's replica on NODE its master for good.

    The replica stops following and takes writes; the ndb file swaps the two chunks, so
    the old master becomes the replica: when its node serves it again, refresh tells it to
    follow the new master (what it held that the new master lacks is dropped).

    \b
    Example:
      geryon disks promote d0.mbox node1
    """
    from geryon.disks.replicas import promote as make_master

    click.echo(_then_refresh(ctx, lambda client, config: make_master(
        client, config.ndb_path, disk, node, keepalive=float(config.keepalive))))


@disks.command(context_settings=CONTEXT_SETTINGS)
@click.pass_context
def check(ctx):
    """Compare every replica with its master; exit status 1 on any difference.

    A replica must hold its master's log, byte for byte, to its own end (it may be behind):
    the xxh3 of the two chunks' first bytes to the replica's end must be the same.  A
    replica or master that is not served cannot be compared, and counts as a difference.

    \b
    Example:
      geryon disks check
    """
    from geryon.disks.replicas import check as compare

    config, dial = _config(ctx)

    async def main():
        async with await dial() as client:
            return await compare(client, config.ndb_path, keepalive=float(config.keepalive))

    found = run_async(main())
    for one in found:
        click.echo(f"{one.replica} (replica of {one.disk}): {one.note}")
    if not found:
        click.echo("no disk has replicas", err=True)
    if any(not one.same for one in found):
        sys.exit(1)


def with_disk(spec, registry, work):
    """Dial the disk named by DISK[:PATH] and run work(client, path)."""
    from geryon.config import Config
    from geryon.disks.names import split_spec
    from geryon.disks.remote import dial_disk
    from geryon.registry.client import dial_registry

    config = Config.load(registry=registry)
    name, path = split_spec(spec)

    async def main():
        async with await dial_registry(config) as reg:
            disk = await dial_disk(reg, name, keepalive=float(config.keepalive))
        async with disk:
            return await work(disk, path)

    return run_async(main())


@click.command(context_settings=CONTEXT_SETTINGS)
@registry_option
@click.option("-l", "long", is_flag=True, help="long listing: size and kind")
@click.argument("spec")
def ls(registry, long, spec):
    """List a directory of a disk, from anywhere in the cluster.

    \b
    Example:
      geryon ls d0.mbox
      geryon ls -l d0.mbox:inbox
    """
    from geryon.ns.client import is_dir

    async def work(disk, path):
        return await disk.listdir("/" + path)

    from geryon.quote import for_terminal
    for name, attrs in with_disk(spec, registry, work):
        directory = is_dir(attrs)
        name = for_terminal(name)  # a file name may hold anything but '/' and NUL
        if long:
            click.echo(f"{'d' if directory else '-'} {attrs.size or 0:>10} {name}")
        else:
            click.echo(name + ("/" if directory else ""))


@click.command(context_settings=CONTEXT_SETTINGS)
@registry_option
@click.argument("specs", nargs=-1, required=True)
def cat(registry, specs):
    """Print files of disks, from anywhere in the cluster.

    \b
    Example:
      geryon cat d1.mbox:inbox/42
    """
    out = click.get_binary_stream("stdout")
    for spec in specs:
        async def work(disk, path):
            return await disk.read("/" + path)
        out.write(with_disk(spec, registry, work))
    out.flush()


@click.command(context_settings=CONTEXT_SETTINGS)
@registry_option
@click.argument("args", nargs=-1, required=True, metavar="DISK[:PATH]... [DEST]")
def get(registry, args):
    """Copy files, directory trees or whole disks from disks to DEST (default: here).

    As with cp, the last argument is DEST when there are two or more.  A whole disk (no
    :PATH) is fetched as one chunk image and unpacked here; several are fetched at once
    and unpacked on every core, which is the fast way to export disks.

    \b
    Example:
      geryon get d0.mbox d1.mbox d2.mbox out/   # three whole disks into out/
      geryon get d0.mbox:inbox/42 .
    """
    from geryon.config import Config
    from geryon.disks.fetch import fetch_all
    from geryon.registry.client import dial_registry

    specs, dest = (args[:-1], args[-1]) if len(args) > 1 else (args, ".")
    config = Config.load(registry=registry)

    async def main():
        async with await dial_registry(config) as reg:
            return await fetch_all(reg, specs, dest, keepalive=float(config.keepalive))

    count = run_async(main())
    click.echo(f"{count} file{'s' if count != 1 else ''}", err=True)
