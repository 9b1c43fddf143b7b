"""`geryon registry`, `register`, `reglisten`, `regquery`, `regwatch`."""

import click

from geryon.cli import (CONTEXT_SETTINGS, announce_ready, ready_option, registry_option,
                        run_async, serve_until_stopped, setup_logging)


def pairs_of(values) -> dict:
    return {attr: value for attr, value in values}




@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-a", "--address", default="tcp!*!registry", show_default=True,
              help="dial string to listen on (port 0: any free port)")
@click.option("--state", default="", help="directory for persistent entries "
              "(default: $GERYON_HOME/registry)")
@click.option("--mdns-interface", default="", help="announce by mDNS on this interface address")
@click.option("--port-file", default="", help="write the port listened on to this file")
@ready_option
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
def registry(address, state, mdns_interface, port_file, ready_file, verbose):
    """Serve the registry: the live services of the cluster, as a file tree over SFTP.

    Entries made through `new` last as long as their maker's open file; `persist 1`
    entries are kept on disk across restarts.  When this machine holds the CA, the
    registry also signs the certificates of machines that `geryon join`.

    \b
    Example:
      geryon registry -a 'tcp!*!6675'
      sftp -P 6675 alice@gridhost   # then: ls, get index
    """
    from pathlib import Path

    from geryon.config import Config, home
    from geryon.ns.ca import CertificateAuthority, Identity
    from geryon.registry.server import RegistryServer

    setup_logging(verbose)
    config = Config.load()
    if config.use_mdns and not (mdns_interface or config.mdns_interface):
        from geryon.config import ConfigError
        raise ConfigError("mdns is on but no mdns_interface is set; name the address of the "
                          "one interface mDNS may use (--mdns-interface ADDR)")

    async def main():
        server = RegistryServer(Path(state) if state else home() / "registry", Identity.load(),
                                ca=CertificateAuthority.at(), keepalive=float(config.keepalive),
                                mdns_interface=mdns_interface or (
                                    config.mdns_interface if config.use_mdns else ""))
        await serve_until_stopped(server, address, "registry", "registry", port_file,
                                  ready_file)

    run_async(main(), daemon=True)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-a", "attrs", nargs=2, multiple=True, metavar="ATTR VALUE",
              help="attribute to register (repeatable)")
@registry_option
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
@click.argument("command", nargs=-1, required=True)
def register(attrs, registry, verbose, command):
    """Run a server on a free port and register it while it runs.

    The port is given to COMMAND as $GERYON_PORT and wherever {port} appears in its
    arguments.  Once the port accepts connections, `tcp!HOST!PORT` is registered with the
    attributes; the entry goes when COMMAND exits, and is made again if the registry
    restarts.  Exits with COMMAND's status.

    \b
    Example:
      geryon register -a svc web -a owner alice -- python3 -m http.server {port}
    """
    from geryon.registry.announce import register_command
    setup_logging(verbose)
    return run_async(register_command(list(command), pairs_of(attrs), registry))


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-r", "attrs", nargs=2, multiple=True, metavar="ATTR VALUE",
              help="attribute to register (repeatable)")
@registry_option
@click.option("-v", "--verbose", is_flag=True, help="log what happens")
@click.argument("address")
@click.argument("command", nargs=-1, required=True)
def reglisten(attrs, registry, verbose, address, command):
    """Listen on ADDRESS and run COMMAND for each connection, registered while listening.

    COMMAND's standard input and output are the connection.  The listening address is
    registered as `tcp!HOST!PORT` with the attributes, and again after a registry restart.

    \b
    Example:
      geryon reglisten -r svc echo 'tcp!*!0' -- cat
    """
    from geryon.registry.announce import reglisten_command
    setup_logging(verbose)
    return run_async(reglisten_command(address, list(command), pairs_of(attrs), registry),
                     daemon=True)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-n", "names_only", is_flag=True, help="print service names only")
@registry_option
@click.argument("filter", nargs=-1)
def regquery(names_only, registry, filter):
    """Print the registered services that have every ATTR VALUE pair given.

    A value of * matches any value, but the attribute must be there.  With no pairs,
    every service is printed.  Output is one quoted line per service.

    \b
    Example:
      geryon regquery svc rstyx
      geryon regquery -n resource kfs host '*'
    """
    from geryon.config import Config
    from geryon.registry.client import dial_registry, query

    async def main():
        client = await dial_registry(Config.load(registry=registry))
        try:
            return await query(client, *filter)
        finally:
            await client.close()

    from geryon.quote import for_terminal
    for service in run_async(main()):
        click.echo(for_terminal(service.name if names_only else service.line()))


@click.command(context_settings=CONTEXT_SETTINGS)
@registry_option
@click.option("--count", default=0, help="stop after this many changes (0: never)")
@click.option("--ready", "ready_file", default="", metavar="FILE",
              help="write FILE once watching: every change after that is printed")
def regwatch(registry, count, ready_file):
    """Print one line per change to the registry, as it happens.

    Lines are `SEQ add|update LINE`, `SEQ remove NAME`, or `SEQ reset` when changes were
    missed (read `geryon regquery` again then).

    \b
    Example:
      geryon regwatch | grep ' remove '
    """
    from geryon.config import Config
    from geryon.quote import for_terminal
    from geryon.registry.client import dial_registry, watch

    async def main():
        client = await dial_registry(Config.load(registry=registry))
        seen = 0
        try:
            async for change in watch(client, lambda: announce_ready(ready_file)):
                click.echo(for_terminal(f"{change.seq} {change.op} {change.line}".rstrip()))
                seen += 1
                if count and seen >= count:
                    return
        finally:
            await client.close()

    run_async(main(), daemon=True)
