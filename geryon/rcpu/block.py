"""Command blocks as users write them, and the exec request that carries one to a cpu.

A block is shell text.  It may be written in braces, `{ls /n/d0.mbox}` (Inferno's sh), in
angle brackets, `<ls /n/d0.mbox>` (as Geryon's card wrote it, where braces would be eaten
by a shell), or bare; each form means the same block.  The request a cpu service takes
by SSH exec is one line of shell-quoted words (docs/cpu.md):

    block [--out CPUDISK] [--ship] [--rc] [DISK...] -- BLOCK

--ship binds the files the connection shipped at /n/client; --rc sources the caller's own
gridrc.sh, shipped as `.gridrc.sh`, before the block.
"""

import shlex
from dataclasses import dataclass

from geryon.errors import GeryonError

MAX_BLOCK = 64 << 10  # bytes of block text: a script belongs in a shipped file beyond that


class BlockError(GeryonError):
    """A block or a block request that cannot be run as written."""


def normalise(text: str) -> str:
    """The block's shell text: braces or angle brackets around it are taken off."""
    body = text.strip()
    if len(body) >= 2 and (body[0], body[-1]) in (("{", "}"), ("<", ">")):
        body = body[1:-1].strip()
    if not body:
        raise BlockError("the block is empty; give a command, e.g. rcpu '{ls /n}'")
    if len(body.encode()) > MAX_BLOCK:
        raise BlockError(f"the block is {len(body.encode())} bytes; the limit is {MAX_BLOCK} "
                         "(ship a script with --ship and run it from /n/client)")
    return body


def disk_name(word: str) -> str:
    """A disk named as rcpu takes it: `d0.mbox`, or its path in a block's name space,
    `/n/d0.mbox` (what $cpudisk holds), so that a block's output disk can be handed on."""
    prefix = "/n/"
    return word[len(prefix):].rstrip("/") if word.startswith(prefix) else word


@dataclass(frozen=True)
class BlockRequest:
    """What a cpu is asked to run: the block, the disks it names, its output disk."""

    block: str
    disks: tuple[str, ...] = ()
    out: str = ""
    ship: bool = False
    rc: bool = False

    def command(self) -> str:
        """The exec request's text."""
        words = ["block"]
        if self.out:
            words += ["--out", self.out]
        if self.ship:
            words.append("--ship")
        if self.rc:
            words.append("--rc")
        return shlex.join([*words, *self.disks, "--", self.block])

    @classmethod
    def parse(cls, args: list[str]) -> "BlockRequest":
        """A request from the words after `block` (as geryon.ns.server gives them)."""
        out, ship, rc, disks = "", False, False, []
        words = list(args)
        while words and words[0] != "--":
            word = words.pop(0)
            if word == "--out":
                if not words or words[0] == "--":
                    raise BlockError("block: --out needs a disk name")
                out = words.pop(0)
            elif word == "--ship":
                ship = True
            elif word == "--rc":
                rc = True
            elif word.startswith("-"):
                raise BlockError(f"block: unknown option {word[:40]!r}; options are --out "
                                 "DISK, --ship and --rc")
            else:
                disks.append(word)
        if not words:
            raise BlockError("block: no block given; write `block [--out DISK] [DISK...] -- "
                             "'shell text'`")
        from geryon.disks.names import check_disk_name
        for name in [*disks, *([out] if out else [])]:
            check_disk_name(name)
        if len(set(disks)) != len(disks):
            raise BlockError("block: a disk is named twice; name each once")
        if out in disks:
            raise BlockError(f"block: the output disk {out} is also an input; an output disk "
                             "is never one of the inputs")
        return cls(normalise(" ".join(words[1:])), tuple(disks), out, ship, rc)
