"""The one base class for errors that are meant for people.

A GeryonError's message names the thing, what was wrong and, where it can, what to do.
The command line prints it as it is and exits 1; servers send it back as the failing
request's message and keep serving.
"""


class GeryonError(Exception):
    """An error whose message is fit to show a person as it is."""
