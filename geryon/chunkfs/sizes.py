"""Byte counts as people write them ("64M", "1.5 GiB") and as we print them ("4 MiB")."""

import re

from geryon.errors import GeryonError

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text):
    """Return the byte count `text` names: 4096, 512K, 64M, 64MiB, 1.5G (binary units)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise GeryonError(
            f"size {text!r} is not a byte count; write it as 4096, 512K, 64M or 1G")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def format_size(count):
    """Return `count` bytes in the largest binary unit that keeps it >= 1: '4 MiB', '1.5 KiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} B"
