"""The errors meant for people, with no dependencies (pure cores import them).

A GeryonError's message names the thing, what was wrong and, where it can, what to do.
The command line prints it as it is and exits 1; servers send it back as the failing
request's message and keep serving.  NsError and its kinds are what a served tree answers a
refused request with; the SFTP adapter maps each kind to its status code.
"""


class GeryonError(Exception):
    """An error whose message is fit to show a person as it is."""


class NsError(GeryonError):
    """An error a tree gives back to the client as the failed request's message."""

    kind = "failure"


class NotFound(NsError):
    kind = "no such file"


class PermissionDenied(NsError):
    kind = "permission denied"


class Exists(NsError):
    kind = "file exists"


class Unsupported(NsError):
    """A request the tree does not implement (refused: deny by default)."""

    kind = "unsupported"


class LimitExceeded(NsError):
    """An input larger than a configured limit; the message names the limit."""
