"""The disks' errors, with no dependencies (the pure planning modules raise them)."""

from geryon.errors import GeryonError


class DiskError(GeryonError):
    """A disk that cannot be found, dialled or used."""


class LoadError(DiskError):
    """Files that cannot be loaded as asked, or a load that stopped short."""


class RefreshError(DiskError):
    """Registry changes that refresh could not make."""
