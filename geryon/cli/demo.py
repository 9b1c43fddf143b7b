"""`geryon demo`: a whole cluster on this machine, showing what it does."""

import click

from geryon.cli import CONTEXT_SETTINGS


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--keep", is_flag=True, help="keep the cluster running until Ctrl-C")
@click.option("--dir", "directory", default="", help="work here instead of a temporary directory")
def demo(keep, directory):
    """Start a whole cluster on loopback, show it working, and clean up.

    Makes a certificate authority, a registry, an Owen scheduler and three nodes with
    chunk disks, cpus and workers; loads a corpus with replicas; runs rcpu blocks, the
    word-count mapreduce (again with a node killed) and the seed's filesplit md5sum job;
    prints the web monitors' address; then stops everything.

    \b
    Example:
      geryon demo
      geryon demo --keep      # then try the printed commands in another shell
    """
    from geryon.demo import Demo
    with Demo(directory, echo=click.echo) as cluster:
        cluster.run()
        if keep:
            cluster.wait()
