"""`geryon ca ...` and `geryon join`: the cluster's certificate authority."""

import click

from geryon.cli import CONTEXT_SETTINGS, run_async
from geryon.config import Config, home
from geryon.ns.ca import ROLES, CertificateAuthority, Identity, host_names, init_local


def role_list(text: str) -> list[str]:
    return [r for r in text.replace(",", " ").split() if r]


@click.group(context_settings=CONTEXT_SETTINGS)
def ca():
    """The cluster certificate authority (CA): it signs every host and user.

    \b
    Example:
      geryon ca init                      # on the first machine: CA, certificates
      geryon ca token                     # print a one-time join token
      geryon ca sign --user alice --roles submit,monitor alice.pub
    """


@ca.command("init", context_settings=CONTEXT_SETTINGS)
@click.option("--name", default="", help="identity of this machine's user (default: config name)")
@click.option("--roles", default=",".join(ROLES), show_default=True,
              help="roles of this machine's user certificate")
@click.option("--host", "hosts", multiple=True, help="extra host name for the host certificate")
def init(name, roles, hosts):
    """Create the CA here and make this machine its first member.

    Writes the CA key to $GERYON_HOME/ca (keep it safe) and gives this machine a user
    certificate with every role and a host certificate for its names and addresses.

    \b
    Example:
      geryon ca init --name alice
    """
    from geryon.ns.ca import check_name, check_roles
    config = Config.load(name=name)
    check_name(config.identity)
    check_roles(role_list(roles))
    authority = CertificateAuthority.at()
    authority.init()
    init_local(authority, Identity.load(), config.identity, role_list(roles),
               [*host_names(), *hosts])
    if name:
        config.save(name=name)
    click.echo(f"certificate authority created in {authority.directory}")
    click.echo(f"this machine is {config.identity} with roles {', '.join(role_list(roles))}")


@ca.command("sign", context_settings=CONTEXT_SETTINGS)
@click.argument("pubkey", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "user", default="", help="sign a user certificate for this identity")
@click.option("--roles", default="submit,monitor", show_default=True,
              help=f"roles for a user certificate, from: {', '.join(ROLES)}")
@click.option("--host", "hosts", multiple=True, help="sign a host certificate for these names")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 36500),
              help="validity in days (1 to 36500)")
def sign(pubkey, user, roles, hosts, days):
    """Sign a public key: a user certificate (--user) or a host certificate (--host).

    Writes the certificate beside the key as NAME-cert.pub, as ssh-keygen does.

    \b
    Example:
      geryon ca sign --user alice --roles submit,monitor ~/.ssh/id_ed25519.pub
      geryon ca sign --host node3 --host 10.0.0.3 /etc/ssh/ssh_host_ed25519_key.pub
    """
    import asyncssh
    from geryon.ns.ca import CAError
    if bool(user) == bool(hosts):
        raise CAError("say either --user NAME or --host NAME (one or more), not both")
    try:
        key = asyncssh.read_public_key(pubkey)
    except (asyncssh.KeyImportError, ValueError) as err:
        raise CAError(f"{pubkey} is not an SSH public key ({err}); give the .pub file "
                      "ssh-keygen made") from None
    authority = CertificateAuthority.at()
    if user:
        cert = authority.sign_user(key, user, role_list(roles), days * 86400)
        authority.claim_identity(user, renew=True)  # so that no join takes this name
    else:
        cert = authority.sign_host(key, list(hosts), days * 86400)
    out = pubkey[:-4] + "-cert.pub" if pubkey.endswith(".pub") else pubkey + "-cert.pub"
    with open(out, "wb") as f:
        f.write(cert.export_certificate())
    click.echo(out)


@ca.command("token", context_settings=CONTEXT_SETTINGS)
@click.option("--roles", default="worker,cpu", show_default=True,
              help=f"roles the joining machine gets, from: {', '.join(ROLES)}")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(1, 30 * 86400),
              help="seconds the token stays good (at most 30 days)")
def token(roles, ttl):
    """Print a one-time token that lets one machine join the cluster.

    The registry on this machine (it holds the CA) signs the joiner's keys when it
    presents the token.  The token also carries the CA's public key, so the joiner can
    tell the real registry from an impostor.

    \b
    Example:
      geryon ca token --roles worker,cpu
      # then, on the new machine:  geryon join gj1-... 'tcp!gridhost!6675'
    """
    click.echo(CertificateAuthority.at().issue_token(role_list(roles), ttl))


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("token")
@click.argument("registry")
@click.option("--name", default="", help="this machine's identity (default: its host name)")
@click.option("--host", "hosts", multiple=True, help="extra host name for the host certificate")
def join(token, registry, name, hosts):
    """Join this machine to a cluster: get certificates and remember the registry.

    \b
    Example:
      geryon join gj1-3q2...  'tcp!gridhost!6675'
      geryon regquery          # works now without flags
    """
    import socket
    from geryon.ns.ca import check_name
    from geryon.ns.join import join_cluster
    ident = Identity.load()
    identity = check_name(name or socket.gethostname())
    roles = run_async(join_cluster(token, registry, ident, identity, [*host_names(), *hosts]))
    Config.load().save(registry=registry, name=identity)
    click.echo(f"joined the cluster at {registry} as {identity} with roles {', '.join(roles)}")
    click.echo(f"certificates are in {home()}")
