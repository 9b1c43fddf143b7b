"""A sample corpus for the demo: real English text, laid out like caerwyn's mbox disks.

The text is the module docstrings of Python's own standard library (present wherever
Geryon runs), one "message" per module, under `mbox/<group>/<subgroup>/<name>` so that the
classic map block `idx /n/d?.mbox/*/*/*` reaches every message.
"""

import re
import sysconfig
from pathlib import Path

# A module's docstring: the first string literal, after comments and blank lines.
DOCSTRING = re.compile(r'\A(?:\s*#[^\n]*\n|\s*\n)*\s*[rRuU]?("""|\'\'\')(.*?)\1', re.S)


def docstrings(limit: int):
    """(module name, docstring) of up to `limit` standard library modules, in name order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = 0
    for path in sorted(stdlib.rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts or found >= limit:
            continue
        try:
            match = DOCSTRING.match(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        doc = match.group(2).strip() if match else ""
        if len(doc) > 200:
            found += 1
            yield path.relative_to(stdlib).with_suffix("").as_posix().replace("/", "."), doc


def write_corpus(directory: Path, messages: int = 400, copies: int = 6) -> int:
    """Write the corpus under directory; return its size in bytes.

    Each docstring appears `copies` times with a different header, so the corpus is big
    enough to span several small disks."""
    total = 0
    for n, (module, doc) in enumerate(docstrings(messages)):
        for copy in range(copies):
            target = directory / f"g{n % 7}" / f"s{copy}" / f"{module}"
            target.parent.mkdir(parents=True, exist_ok=True)
            text = f"From: {module}@python.org\nSubject: {module} (copy {copy})\n\n{doc}\n"
            target.write_text(text)
            total += len(text)
    return total
