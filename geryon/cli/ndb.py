"""`geryon ndb query`: Inferno's ndb/query over an ndb file such as ndb/cluster.

Exit status as grep's: 0 when something was printed, 1 when nothing matched (and nothing
is printed, so scripts can test it quietly), 2 when the file cannot be read.
"""

import click

from geryon.cli import CONTEXT_SETTINGS
from geryon.ndb import Database, NdbError, format_line
from geryon.quote import quote

NO_MATCH, TROUBLE = 1, 2


@click.group(context_settings=CONTEXT_SETTINGS)
def ndb():
    """Query ndb (attrdb) files such as ndb/cluster.

    \b
    Example:
      geryon ndb query name d0.mbox master
    """


@ndb.command(context_settings=CONTEXT_SETTINGS)
@click.option("-a", "every", is_flag=True, help="Print every match, not just the first.")
@click.option("-f", "path", default="", metavar="FILE",
              help="The ndb file to search (its database= entry may list more); default: "
                   "the ndb setting, $GERYON_HOME/ndb/cluster.")
@click.argument("attr")
@click.argument("value", required=False)
@click.argument("rattr", required=False)
@click.pass_context
def query(ctx, every, path, attr, value, rattr):
    """Print the first entry that has ATTR (with VALUE), on one line.

    With RATTR print instead that attribute's value from the entry, the one on the line
    holding ATTR=VALUE first.  -a prints every matching entry, or every RATTR value of
    every matching entry, one per line.  Values that need it are quoted; the empty value
    of a bare attribute prints as ''.  Exit status: 0 found, 1 no match (silent), 2 the
    file cannot be read.

    \b
    Example:
      $ geryon ndb query name d0.mbox
      name=d0.mbox kfs='' master=node0!chunk0 replica=d0.replica
      $ geryon ndb query name d0.mbox master
      node0!chunk0
      $ geryon ndb query -a kfs '' name
      d0.mbox
      d1.mbox
      ...
    """
    from geryon.config import Config
    db = Database(path or Config.load().ndb_path)
    try:
        if rattr is None:
            entries = db.query_all(attr, value) if every else [db.query(attr, value)]
            lines = [format_line(e) for e in entries if e is not None]
        elif every:
            lines = [quote(v) for v in db.lookup_all(attr, value, rattr)]
        else:
            found = db.lookup(attr, value, rattr)
            lines = [] if found is None else [quote(found)]
    except NdbError as err:
        click.echo(f"geryon ndb query: {err}", err=True)
        ctx.exit(TROUBLE)
    for line in lines:
        click.echo(line)
    ctx.exit(0 if lines else NO_MATCH)
