"""`geryon web`: the Node Monitor, Job Monitor and cluster view in a browser (docs/web.md)."""

import click

from geryon.cli import (CONTEXT_SETTINGS, announce_ready, ready_option, registry_option,
                        run_async, setup_logging)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-a", "--address", default="tcp!127.0.0.1!6680", show_default=True,
              help="dial string to listen on (port 0: any free port; tcp!*!6680 for every "
                   "interface: the token still guards it)")
@registry_option
@click.option("--sched", "-S", default="", metavar="ADDR",
              help="scheduler dial string (default: GERYON_SCHED, the config, or the "
                   "registry's svc infsched entry)")
@click.option("--upload-max", default="64M", show_default=True, metavar="SIZE",
              help="bytes the files of one new job may take in all (K, M, G suffixes)")
@ready_option
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
def web(address, registry, sched, upload_max, ready_file, verbose):
    """Serve the monitors: jobs, nodes and the cluster, live, as one web page.

    It prints the address to open; the address carries the login token that every
    request needs (kept as a cookie once the page is open).  The page acts with this
    machine's certificate: it may do what that certificate's roles allow, no more.

    \b
    Example:
      geryon web                        # then open the address it prints
      geryon web -a 'tcp!127.0.0.1!0'   # any free port
    """
    from geryon.chunkfs.sizes import parse_size
    from geryon.config import Config
    from geryon.errors import GeryonError
    from geryon.ns.server import wait_forever
    from geryon.web import WebServer

    setup_logging(verbose)
    config = Config.load(registry=registry, sched=sched)
    limit = parse_size(upload_max)
    if limit <= 0:
        raise GeryonError(f"--upload-max {upload_max}: give a positive size such as 64M")

    async def main():
        server = WebServer(config, address, sched=sched, upload_max=limit)
        url = await server.start()
        announce_ready(ready_file, url)
        click.echo(f"geryon web: open {url}", err=True)
        try:
            await wait_forever()
        finally:
            await server.close()

    run_async(main(), daemon=True)

