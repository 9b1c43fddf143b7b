"""What the monitors show, with no I/O: the trees' text in, plain dicts (JSON for the
page) out, and the rules for what the page may ask the trees to do.

The scheduler's `admin/jobs`, `admin/nodes` and `admin/N/monitor` lines, and the
registry's services, are turned into rows here; geryon.web.trees reads them and
geryon.web.server sends the rows to the browser.  The controls the page offers are
checked here too: each is one ctl message a shell could write (docs/sched.md), and only
the verbs listed below are let through (deny by default); the scheduler judges the rest.
"""

from dataclasses import dataclass

from geryon import quote
from geryon.disks.names import DiskState
from geryon.errors import GeryonError
from geryon.registry.core import Service


class FormError(GeryonError):
    """A request from the page that the server will not pass on to a tree."""


# ctl verbs the page may write to admin/N/ctl, and to admin/ctl (never dump or teardown
# of every job: the page has no control for them).
JOB_VERBS = ("start", "stop", "teardown", "delete", "priority", "group", "kick", "deadline")
ADMIN_VERBS = ("group", "unblacklist", "delnode")
MESSAGE_MAX = 65536  # one ctl message, as the scheduler bounds it


def pairs(words: list[str]) -> dict:
    return dict(zip(words[0::2], words[1::2]))


def parse_jobs(text: str) -> list[dict]:
    """admin/jobs: `id state complete total owner priority generator args...` a line."""
    jobs = []
    for line in text.splitlines():
        words = quote.split(line)
        if len(words) < 6 or not words[0].isdigit():
            continue
        complete, total = _int(words[2]), _int(words[3])
        jobs.append({"id": int(words[0]), "state": words[1], "complete": complete,
                     "total": total, "owner": words[4], "priority": words[5],
                     "argv": words[6:], "percent": percent(complete, total)})
    return jobs


def parse_nodes(text: str) -> list[dict]:
    """admin/nodes: a node's name, then its pairs; attributes are the pairs the scheduler
    does not define."""
    fixed = ("state", "since", "address", "connected", "completed", "failed",
             "blacklisted", "tasks")
    nodes = []
    for line in text.splitlines():
        words = quote.split(line)
        if not words:
            continue
        p = pairs(words[1:])
        nodes.append({"name": words[0], "state": p.get("state", "?"),
                      "since": _float(p.get("since")), "address": p.get("address", ""),
                      "connected": _int(p.get("connected")),
                      "completed": _int(p.get("completed")), "failed": _int(p.get("failed")),
                      "blacklisted": _float(p.get("blacklisted")),
                      "tasks": p.get("tasks", "").split(),
                      "attrs": {k: v for k, v in p.items() if k not in fixed}})
    return nodes


def parse_monitor(text: str) -> dict:
    """One line of a job's monitor: its pairs, numbers as numbers."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    out = {}
    for key, value in pairs(quote.split(lines[-1])).items():
        out[key] = value if key == "state" else _number(value)
    out["percent"] = percent(out.get("complete", 0), out.get("total", 0))
    return out


def parse_group(text: str) -> list[str] | str:
    """A group file: 'all', 'none', or the names."""
    words = quote.split(text.strip()) if text.strip() else ["none"]
    return words[0] if words in (["all"], ["none"]) else words


def percent(done, total) -> int:
    if not total:
        return 0
    return int(100 * done // total)


def cpus(services: list[Service]) -> list[dict]:
    """The cpu services (`svc rstyx`), by host."""
    out = []
    for s in services:
        a = s.attrs
        if a.get("svc") != "rstyx":
            continue
        out.append({"addr": s.name, "host": a.get("host", ""), "ncpu": _int(a.get("ncpu")),
                    "load": _float(a.get("load")), "blocks": _int(a.get("blocks")),
                    "failed": _int(a.get("failed")), "running": _int(a.get("running"))})
    return sorted(out, key=lambda c: (c["host"], c["addr"]))


def chunk_servers(services: list[Service]) -> list[dict]:
    """Hosts serving chunks (`resource kfs`): how many, and their bytes."""
    hosts: dict[str, dict] = {}
    for s in services:
        a = s.attrs
        if a.get("resource") != "kfs":
            continue
        h = hosts.setdefault(a.get("host", "?"), {"host": a.get("host", "?"), "chunks": 0,
                                                  "size": 0, "used": 0, "replicas": 0})
        h["chunks"] += 1
        h["size"] += _int(a.get("size"))
        h["used"] += _int(a.get("used"))
        h["replicas"] += 1 if a.get("replicaof") else 0
    return [hosts[k] for k in sorted(hosts)]


def disks(states: list[DiskState], services: list[Service]) -> list[dict]:
    """The disks as `geryon disks` shows them, with their fill in percent and replicas."""
    replicas = {}
    for s in services:
        if "addr" in s.attrs and s.attrs.get("replica"):
            replicas[s.name] = s.attrs["replica"].split()
    out = []
    for d in states:
        out.append({"name": d.name, "host": d.host, "chunk": d.chunk, "used": d.used,
                    "size": d.size, "fill": percent(d.used or 0, d.size or 0)
                    if d.size else None, "state": d.state, "replica_of": d.replica_of,
                    "replicas": replicas.get(d.name, [])})
    return out


def mapreduce_jobs(services: list[Service]) -> list[dict]:
    """The mapreduce drivers' entries (`svc mapreduce job NAME state S phase P done N
    total M ...`, geryon.mapreduce.progress), running and kept."""
    out = []
    for s in services:
        a = s.attrs
        if a.get("svc") != "mapreduce":
            continue
        done, total = _int(a.get("done")), _int(a.get("total"))
        extra = {k: v for k, v in a.items()
                 if k not in ("svc", "job", "state", "phase", "done", "total", "persist")}
        out.append({"entry": s.name, "job": a.get("job", s.name), "phase": a.get("phase", ""),
                    "state": a.get("state", ""),
                    "done": done, "total": total, "percent": percent(done, total),
                    "attrs": extra})
    return sorted(out, key=lambda j: j["job"])


def services(services: list[Service]) -> list[dict]:
    """Every registry entry, as the registry lists it."""
    return [{"name": s.name, "attrs": dict(s.attrs)} for s in services]


def job_message(text: str) -> str:
    """A ctl message for admin/N/ctl the page may send; FormError if not."""
    return _message(text, JOB_VERBS, "job ctl")


def admin_message(text: str) -> str:
    """A ctl message for admin/ctl the page may send; FormError if not."""
    return _message(text, ADMIN_VERBS, "admin/ctl")


def _message(text: str, verbs: tuple, what: str) -> str:
    if len(text.encode()) > MESSAGE_MAX:
        raise FormError(f"{what}: the message is {len(text.encode())} bytes; the limit is "
                        f"{MESSAGE_MAX}")
    if "\n" in text.strip():
        raise FormError(f"{what}: write one message, on one line")
    try:
        words = quote.split(text.strip())
    except GeryonError as err:
        raise FormError(f"{what}: {err}") from None
    if not words or words[0] not in verbs:
        raise FormError(f"{what}: {words[0] if words else 'an empty message'!r} is not a "
                        f"control of this page; use one of {', '.join(verbs)}")
    return quote.join(words)


@dataclass(frozen=True)
class Upload:
    """A file the page sent with a new job: its name in the job's files, and its bytes."""

    name: str
    data: bytes


def upload_name(name: str) -> str:
    """The name an uploaded file gets among the job's files: its last path element, which
    must be a plain word the generators can name."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or base in (".", "..") or len(base) > 255 or any(
            ord(c) < 32 or c in "'\"" for c in base):
        raise FormError(f"file {name[:80]!r}: give the file a plain name (no quotes or "
                        "control characters, at most 255 characters)")
    return base


def filesplit_argv(options: str, file: str, jobtype: str, command: str) -> list[str]:
    """`filesplit [options] FILE JOBTYPE ARGS...`, as `geryon owen start` takes it."""
    if not jobtype.strip():
        raise FormError("filesplit: name the task type (e.g. test)")
    command = command.strip()
    try:
        opts = quote.split(options)
        # A block (Owen's `{ cmd; cmd }` form) is one argument, as the shell would pass it.
        args = [command] if command.startswith("{") else quote.split(command)
    except GeryonError as err:
        raise FormError(f"filesplit: {err}") from None
    bad = [o for o in opts if not o.startswith("-")]
    if bad:
        raise FormError(f"filesplit: options start with '-' ({bad[0]!r} does not); "
                        "put the command in its own field")
    return ["filesplit", *opts, file, jobtype.strip(), *args]


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _number(value: str):
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value
