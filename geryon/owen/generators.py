"""Owen's task generators, filesplit and job: what `load <generator> args...` makes.

A generator turns a job's arguments and the files its controller wrote into the job's
`data` directory into a fixed list of tasks, says whether a task's output is a good
result, and turns a good output into the bytes appended to the job's result file.  It is
pure apart from reading data_dir once, at load: every error in the arguments or the
input surfaces there, as a GeneratorError whose message says how to fix it.

The interface the scheduler uses is GeneratorError, TaskSpec, TaskGenerator, load() and
FORMATS.  Beyond the agreed interface, for the scheduler and the worker:

- Every TaskGenerator also has `output` ("data": the task's result is what its `submit`
  prints; "bundle": the worker sends back an uncompressed tar of the task's working
  directory) and `script` (None, or the job's `(script NAME arg...)` as a tuple of
  words: a scheduler-side script whose `verify` the scheduler runs after
  TaskGenerator.verify and whose `finalise` it runs on success).
- A Filesplit also has `lines`, `bare`, `keep_failed`, `keep_all`, `verbose` (the flags)
  and `result_path`: the result file as the user named it (`-o` as given, or the input
  file's name with `.result`), for the controller to place the result where Owen would.
  `result_name` is always a single file name, the last element of result_path.
- File names in arguments and `(path P)` are names inside data_dir.  A leading `/` is
  dropped, so the man page's `/tmp/mytasks` is data_dir/tmp/mytasks: a controller that
  copies input files keeping their paths lets users write Owen's examples as they are.
  `..`, symbolic links and anything else leading out of data_dir are refused.
- TaskSpec.files: each name is a relative path in the task's working directory (`N`, or
  `N/f` for a file inside directory N; the worker makes the directories).  A name ending
  in `/` holds an uncompressed tar archive to unpack as the directory named by the rest
  (`N/` -> directory N): that is how `(kind bundle)` arrives.
- TaskSpec.env: (TAG, value) pairs the worker sets as environment variables ($TAG).

Limits (refused at load with a message naming the constant): MAX_INPUT_BYTES read from
data_dir per job, MAX_FILES files read per job, MAX_TASKS tasks per job, MAX_SPEC_BYTES
in a job's S-expression.
"""

import io
import itertools
import math
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from geryon import quote
from geryon.errors import GeryonError
from geryon.owen import sexpr
from geryon.owen.records import RecordError, format_result, read_records, split_lines

MAX_INPUT_BYTES = 256 * 1024 * 1024
MAX_FILES = 100_000
MAX_TASKS = 200_000
MAX_SPEC_BYTES = 64 * 1024

FILESPLIT_USAGE = "filesplit [-kav] [-ln] [-o resultfile] file jobtype [arg...]"
JOB_USAGE = ("job '(job (file (path P) [(name N)] [(size S)] [(split lines|files)] "
             "[(kind data|stdin|bundle)])* (value TAG V|(range [from] to [by])|(for V...))* "
             "(task TYPE arg...) [(output data|bundle)] [(script NAME arg...)])'")
FORMATS: dict[str, str] = {"filesplit": FILESPLIT_USAGE, "job": JOB_USAGE}

_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")      # a task type names <type>.job
_TAG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")              # a value's tag is a variable


class GeneratorError(GeryonError):
    """Bad arguments or input: the job's load fails with this message."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task, as the scheduler stores it and a worker runs it."""

    n: int                                      # task number, from 0
    jobtype: str                                # a worker must have <jobtype>.job
    args: tuple[str, ...]                       # arguments to runtask
    input: bytes                                # the task's standard input
    files: tuple[tuple[str, bytes], ...] = ()   # (name, content) in its working directory
    env: tuple[tuple[str, str], ...] = ()       # (TAG, value) variables


class TaskGenerator:
    """A loaded job's tasks and its rules for results."""

    name = ""
    failure_limit = 10
    result_name = "result"
    output = "data"
    script: tuple[str, ...] | None = None

    def __init__(self, description: str, tasks: list[TaskSpec]):
        self.description = description
        self._tasks = tasks

    def tasks(self) -> list[TaskSpec]:
        """Every task, numbered from 0."""
        return list(self._tasks)

    def verify(self, n: int, output: bytes) -> str | None:
        """None if output is a good result for task n; else why not."""
        self._check(n)
        return None

    def record(self, n: int, output: bytes) -> bytes:
        """The bytes a good output of task n adds to the job's result file."""
        self._check(n)
        return format_result(n, output)

    def _check(self, n: int):
        if not 0 <= n < len(self._tasks):
            raise GeneratorError(f"{self.name}: there is no task {n}; the job's tasks are "
                                 f"0 to {len(self._tasks) - 1}")


def load(argv: list[str], data_dir: Path) -> TaskGenerator:
    """The generator that `load argv...` names, loaded with its arguments and the job's
    data directory."""
    if not argv:
        raise GeneratorError("load: name a task generator and its arguments, as in "
                             f"'load filesplit -l mytasks test md5sum'; the generators are "
                             f"{', '.join(sorted(GENERATORS))}")
    make = GENERATORS.get(argv[0])
    if make is None:
        raise GeneratorError(f"load: unknown task generator {argv[0]!r}; the generators are "
                             f"{', '.join(sorted(GENERATORS))} (admin/formats shows their "
                             "usage)")
    return make(list(argv[1:]), Path(data_dir))


# -- filesplit ----------------------------------------------------------------------------

class Filesplit(TaskGenerator):
    """One task per record of the input file (or per line, with -l), each running
    `jobtype arg...` with the record as its input; results are result records."""

    name = "filesplit"
    failure_limit = 5

    def __init__(self, args: list[str], data_dir: Path):
        flags, rest = _options(args, "kavln", "o", FILESPLIT_USAGE)
        if len(rest) < 2:
            raise GeneratorError(f"filesplit: give an input file and a job type; usage: "
                                 f"{FILESPLIT_USAGE}")
        file, jobtype, task_args = rest[0], rest[1], tuple(rest[2:])
        _check_type(jobtype, "filesplit")
        self.keep_failed = "k" in flags
        self.keep_all = "a" in flags
        self.verbose = "v" in flags
        self.lines = "l" in flags
        self.bare = "n" in flags
        self.result_path = flags.get("o", file + ".result")
        self.result_name = PurePosixPath(self.result_path).name
        if not self.result_path or self.result_name in ("", ".", ".."):
            raise GeneratorError(f"filesplit: -o {self.result_path!r} names no file; give "
                                 "the result file a name")
        budget = _Budget()
        path = _inside(data_dir, file, "filesplit")
        data = budget.read(path, file, "filesplit")
        if not data:
            raise GeneratorError(f"filesplit: the input file {file} is empty; there is "
                                 "nothing to split into tasks")
        if self.lines:
            pieces = split_lines(data)
        else:
            try:
                pieces = [r.data for r in read_records(data, max_record=MAX_INPUT_BYTES,
                                                       what=file)]
            except RecordError as err:
                raise GeneratorError(f"filesplit: {err} (for one task per line, use "
                                     "filesplit -l)") from None
        _check_count(len(pieces), "filesplit")
        tasks = [TaskSpec(n, jobtype, task_args, piece) for n, piece in enumerate(pieces)]
        super().__init__(quote.join(["filesplit", *args]), tasks)

    def verify(self, n: int, output: bytes) -> str | None:
        self._check(n)
        if not output:
            return "the task gave no output (filesplit counts an empty result as a failure)"
        return None

    def record(self, n: int, output: bytes) -> bytes:
        self._check(n)
        return format_result(n, output, bare=self.bare)


def _options(args: list[str], booleans: str, valued: str, usage: str):
    """Inferno arg(2)-style options: (flags as {letter: value or True}, the rest)."""
    flags: dict[str, object] = {}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word == "--":
            break
        for k, letter in enumerate(word[1:], 1):
            if letter in booleans:
                flags[letter] = True
            elif letter in valued:
                value = word[k + 1:]
                if not value:
                    if i >= len(args):
                        raise GeneratorError(f"option -{letter} needs a value; usage: "
                                             f"{usage}")
                    value = args[i]
                    i += 1
                flags[letter] = value
                break
            else:
                raise GeneratorError(f"unknown option -{letter}; usage: {usage}")
    return flags, args[i:]


# -- job ----------------------------------------------------------------------------------

class Job(TaskGenerator):
    """The job description language: tasks as the cross product of split files and
    multi-valued values, in the order the clauses are written, the last varying fastest."""

    name = "job"
    failure_limit = 10

    def __init__(self, args: list[str], data_dir: Path):
        if not args:
            raise GeneratorError(f"job: give the job's description; usage: {JOB_USAGE}")
        # The description is one word; words of an unquoted one are joined again.
        text = " ".join(args).encode("utf-8")
        if len(text) > MAX_SPEC_BYTES:
            raise GeneratorError(f"job: the description is {len(text)} bytes, more than "
                                 f"the limit of {MAX_SPEC_BYTES} (MAX_SPEC_BYTES)")
        try:
            spec = sexpr.parse(text)
        except sexpr.SExprError as err:
            raise GeneratorError(f"job: {err}") from None
        if not isinstance(spec, sexpr.List) or spec.op != "job":
            raise GeneratorError("job: the description must be one list starting with "
                                 "job, as in '(job (file (path F) (split lines)) (task exec "
                                 "md5sum))'")
        budget = _Budget()
        dims: list[_Dim] = []     # the alternatives of each file and value, in order
        seen_names: set[str] = set()
        seen_tags: set[str] = set()
        task, stdin = None, None
        for clause in spec.args:
            op = _op(clause)
            if op == "file":
                dims.append(_file_parts(clause, data_dir, budget, seen_names))
                if dims[-1].parts and next(iter(dims[-1].parts)).input is not None:
                    if stdin is not None:
                        raise GeneratorError(f"job: {stdin} and {dims[-1].what} are both "
                                             "(kind stdin); a task has one standard input")
                    stdin = dims[-1].what
            elif op == "value":
                dims.append(_value_parts(clause, seen_tags))
            elif op == "task":
                if task is not None:
                    raise GeneratorError("job: two (task ...) clauses; a job runs one task "
                                         "type")
                words = _words(clause.args, "(task TYPE arg...)")
                if not words:
                    raise GeneratorError("job: (task) names no task type; write (task TYPE "
                                         "arg...), as in (task exec md5sum)")
                _check_type(words[0], "job")
                task = (words[0], tuple(words[1:]))
            elif op == "output":
                self.output = _choice(clause, ("data", "bundle"), "(output data|bundle)")
            elif op == "script":
                words = _words(clause.args, "(script NAME arg...)")
                if not words or "/" in words[0] or words[0] in (".", ".."):
                    raise GeneratorError("job: (script NAME arg...) needs a script name "
                                         "(a file name, without '/')")
                self.script = tuple(words)
            else:
                raise GeneratorError(f"job: unknown clause ({op} ...); the clauses are "
                                     "file, value, task, output and script")
        if task is None:
            raise GeneratorError("job: no (task TYPE arg...) clause; say what each task "
                                 "runs, as in (task exec md5sum)")
        for dim in dims:
            if not dim.parts:
                raise GeneratorError(f"job: {dim.what} is empty, so the job has no tasks")
        count = math.prod(len(dim.parts) for dim in dims)
        _check_count(count, "job")
        tasks = []
        for n, combination in enumerate(itertools.product(*(dim.parts for dim in dims))):
            given = [p.input for p in combination if p.input is not None]
            tasks.append(TaskSpec(
                n, task[0], task[1], given[0] if given else b"",
                tuple(f for p in combination for f in p.files),
                tuple(e for p in combination for e in p.env)))
        words = "job " + quote.quote(sexpr.advanced(spec).decode("utf-8"))
        super().__init__(words, tasks)

    def verify(self, n: int, output: bytes) -> str | None:
        self._check(n)
        if self.output == "bundle" and not _is_tar(output):
            return "the task's output is not a tar archive, and (output bundle) wants one"
        return None


@dataclass(frozen=True, slots=True)
class _Part:
    """What one alternative of one file or value gives a task."""

    input: bytes | None = None
    files: tuple[tuple[str, bytes], ...] = ()
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _Dim:
    what: str           # the clause, for messages
    parts: "list[_Part] | _Values"


class _Values:
    """A value's alternatives, made only when asked for, so (range "1000000000") costs
    nothing before the count is refused."""

    def __init__(self, tag: str, values):
        self.tag, self.values = tag, values

    def __len__(self):
        return len(self.values)

    def __iter__(self):
        return (_Part(env=((self.tag, str(v)),)) for v in self.values)


def _op(clause) -> str:
    if not isinstance(clause, sexpr.List) or clause.op is None:
        raise GeneratorError(f"job: {_show(clause)} is not a clause; each clause is a list "
                             "such as (file ...), (value ...) or (task ...)")
    return clause.op


def _show(x) -> str:
    text = sexpr.advanced(x).decode("utf-8")
    return text if len(text) <= 60 else text[:57] + "..."


def _word(x, what: str) -> str:
    if not isinstance(x, sexpr.Atom) or x.text() is None:
        raise GeneratorError(f"job: {what} wants a UTF-8 string, not {_show(x)}")
    return x.text()


def _words(items, what: str) -> list[str]:
    return [_word(x, what) for x in items]


def _choice(clause, legal: tuple[str, ...], what: str) -> str:
    words = _words(clause.args, what)
    if len(words) != 1 or words[0] not in legal:
        raise GeneratorError(f"job: {_show(clause)}: write {what}")
    return words[0]


def _file_parts(clause, data_dir: Path, budget: "_Budget", seen: set[str]) -> _Dim:
    fields: dict[str, str] = {}
    for sub in clause.args:
        key = _op(sub)
        if key not in ("path", "name", "size", "split", "kind"):
            raise GeneratorError(f"job: unknown ({key} ...) in (file ...); a file takes "
                                 "(path P), (name N), (size S), (split lines|files) and "
                                 "(kind data|stdin|bundle)")
        if key in fields:
            raise GeneratorError(f"job: (file ...) has ({key} ...) twice")
        words = _words(sub.args, f"({key} ...)")
        if len(words) != 1:
            raise GeneratorError(f"job: {_show(sub)}: ({key} ...) takes one value")
        fields[key] = words[0]
    if "path" not in fields:
        raise GeneratorError(f"job: {_show(clause)} has no (path P); say which file of the "
                             "job's data it is")
    given = fields["path"]
    what = f"(file (path {given}))"
    split, kind = fields.get("split"), fields.get("kind", "data")
    if split not in (None, "lines", "files"):
        raise GeneratorError(f"job: {what}: (split {split}) should be (split lines) or "
                             "(split files)")
    if kind not in ("data", "stdin", "bundle"):
        raise GeneratorError(f"job: {what}: (kind {kind}) should be data, stdin or bundle")
    name = fields.get("name", PurePosixPath(given.rstrip("/")).name)
    if "/" in name or name in ("", ".", ".."):
        raise GeneratorError(f"job: {what}: the name {name!r} is not a file name; give "
                             "(name N) without '/'")
    if name in seen:
        raise GeneratorError(f"job: two files are named {name!r}; give one a (name N)")
    seen.add(name)
    size = 1
    if "size" in fields:
        if split is None:
            raise GeneratorError(f"job: {what}: (size S) counts the lines or files of each "
                                 "task, so it needs (split lines) or (split files)")
        if not fields["size"].isascii() or not fields["size"].isdigit() \
                or int(fields["size"]) < 1:
            raise GeneratorError(f"job: {what}: (size {fields['size']}) should be a whole "
                                 "number from 1")
        size = int(fields["size"])
    path = _inside(data_dir, given, "job")
    if path.is_dir():
        return _Dim(what, _directory_parts(path, given, name, split, kind, size, budget, what))
    if split == "files":
        raise GeneratorError(f"job: {what}: (split files) needs a directory, and {given} is "
                             "a file; use (split lines) or no split")
    data = budget.read(path, given, "job")
    if split == "lines":
        if kind == "bundle":
            raise GeneratorError(f"job: {what}: lines cannot be a bundle; use kind data or "
                                 "stdin")
        lines = split_lines(data)
        pieces = [b"".join(lines[i:i + size]) for i in range(0, len(lines), size)]
    else:
        pieces = [data]
    if kind == "stdin":
        return _Dim(what, [_Part(input=p) for p in pieces])
    if kind == "bundle":
        if not _is_tar(data):
            raise GeneratorError(f"job: {what}: a bundle is a directory or a tar file, and "
                                 f"{given} is neither")
        return _Dim(what, [_Part(files=((name + "/", data),))])
    return _Dim(what, [_Part(files=((name, p),)) for p in pieces])


def _directory_parts(path: Path, given: str, name: str, split, kind: str, size: int,
                     budget: "_Budget", what: str) -> list[_Part]:
    if split == "lines":
        raise GeneratorError(f"job: {what}: (split lines) needs a file, and {given} is a "
                             "directory; use (split files)")
    if split is None:
        if kind == "stdin":
            raise GeneratorError(f"job: {what}: a directory cannot be standard input; use "
                                 "(kind data), (kind bundle) or (split files)")
        groups = [[path]]
    else:
        entries = sorted(path.iterdir())
        groups = [entries[i:i + size] for i in range(0, len(entries), size)]
    parts = []
    for group in groups:
        # (relative name, content) of every file in the group, directories walked
        files = [(rel, budget.read(p, f"{given}/{rel}", "job"), p.stat().st_mode)
                 for entry in group for rel, p in _walk(entry, path, given)]
        if kind == "stdin":
            parts.append(_Part(input=b"".join(content for _, content, _ in files)))
        elif kind == "bundle":
            parts.append(_Part(files=((name + "/", _tar(files)),)))
        else:
            parts.append(_Part(files=tuple((f"{name}/{rel}", c) for rel, c, _ in files)))
    return parts


def _walk(entry: Path, top: Path, given: str):
    """(name relative to top, path) of each regular file at or under entry, sorted."""
    mode = entry.lstat().st_mode
    if stat.S_ISLNK(mode):
        raise GeneratorError(f"job: {given}/{entry.relative_to(top)} is a symbolic link; "
                             "give the job the file itself")
    if stat.S_ISREG(mode):
        yield entry.relative_to(top).as_posix(), entry
    elif stat.S_ISDIR(mode):
        for child in sorted(entry.iterdir()):
            yield from _walk(child, top, given)
    else:
        raise GeneratorError(f"job: {given}/{entry.relative_to(top)} is not a regular file "
                             "or directory")


def _value_parts(clause, seen: set[str]) -> _Dim:
    if len(clause.args) != 2:
        raise GeneratorError(f"job: {_show(clause)}: write (value TAG V), (value TAG (range "
                             "[from] to [by])) or (value TAG (for V1 V2 ...))")
    tag = _word(clause.args[0], "(value TAG ...)")
    if not _TAG.fullmatch(tag):
        raise GeneratorError(f"job: (value {tag} ...): a tag names a shell variable: letters, "
                             "digits and '_', not starting with a digit")
    if tag in seen:
        raise GeneratorError(f"job: two values are tagged {tag}")
    seen.add(tag)
    what = f"(value {tag} ...)"
    value = clause.args[1]
    if isinstance(value, sexpr.Atom):
        return _Dim(what, [_Part(env=((tag, _word(value, what)),))])
    op = value.op
    if op == "for":
        return _Dim(what, _Values(tag, _words(value.args, f"(value {tag} (for V1 V2 ...))")))
    if op == "range":
        numbers = []
        for word in _words(value.args, f"(value {tag} (range [from] to [by]))"):
            try:
                numbers.append(int(word, 10))
            except ValueError:
                raise GeneratorError(f"job: {what}: (range ...) takes whole numbers, not "
                                     f"{word!r}") from None
        if not 1 <= len(numbers) <= 3:
            raise GeneratorError(f"job: {what}: write (range to), (range from to) or (range "
                                 "from to by)")
        start, end, by = ([0] + numbers + [1])[:3] if len(numbers) == 1 else \
            (numbers + [1])[:3]
        if by == 0:
            raise GeneratorError(f"job: {what}: (range ...) cannot step by 0")
        return _Dim(what, _Values(tag, range(start, end, by)))
    raise GeneratorError(f"job: {what}: the value is a string, (range ...) or (for ...), "
                         f"not {_show(value)}")


# -- shared -------------------------------------------------------------------------------

class _Budget:
    """The bytes and files one load may read from data_dir."""

    def __init__(self):
        self.bytes = 0
        self.files = 0

    def read(self, path: Path, given: str, who: str) -> bytes:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise GeneratorError(f"{who}: {given} is not a regular file")
            self.files += 1
            if self.files > MAX_FILES:
                raise GeneratorError(f"{who}: the job reads more than {MAX_FILES} files "
                                     "(MAX_FILES); bundle them into fewer")
            if self.bytes + size > MAX_INPUT_BYTES:
                raise GeneratorError(f"{who}: the job's input is more than the limit of "
                                     f"{MAX_INPUT_BYTES} bytes (MAX_INPUT_BYTES), reached at "
                                     f"{given}; split the job")
            data = path.read_bytes()
        except OSError as err:
            raise GeneratorError(f"{who}: cannot read {given}: {err.strerror}") from None
        self.bytes += len(data)
        return data


def _inside(data_dir: Path, given: str, who: str) -> Path:
    """The path a name of the job's data stands for, if it is inside data_dir."""
    rel = given.lstrip("/")
    parts = PurePosixPath(rel).parts
    if not rel or ".." in parts or "\0" in rel:
        raise GeneratorError(f"{who}: {given!r} is not a name inside the job's data "
                             "directory; name a file the job's data holds")
    path = data_dir.joinpath(*parts)
    try:
        real, base = path.resolve(strict=True), data_dir.resolve(strict=True)
    except (OSError, RuntimeError):
        raise GeneratorError(f"{who}: {given} is not in the job's data directory; write it "
                             f"into the job's data/{rel} before load") from None
    if not real.is_relative_to(base):
        raise GeneratorError(f"{who}: {given} leads out of the job's data directory")
    return path


def _check_type(jobtype: str, who: str):
    if not _TYPE.fullmatch(jobtype):
        raise GeneratorError(f"{who}: {jobtype!r} is not a job type; a type names the "
                             "worker's <type>.job script: letters, digits and '_.+-'")


def _check_count(count: int, who: str):
    if count == 0:
        raise GeneratorError(f"{who}: the input makes no tasks")
    if count > MAX_TASKS:
        raise GeneratorError(f"{who}: the job would have {count} tasks, more than the limit "
                             f"of {MAX_TASKS} (MAX_TASKS); split it into several jobs")


def _tar(files: list[tuple[str, bytes, int]]) -> bytes:
    """An uncompressed tar of (name, content, mode): the same bytes for the same files,
    keeping only whether each file is executable."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755 if mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(content))
        end = tar.offset
    # tarfile pads the archive to 10 KiB; the two zero blocks that end it are enough
    return out.getvalue()[:end + 2 * tarfile.BLOCKSIZE]


def _is_tar(data: bytes) -> bool:
    if not data:
        return False
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            tar.getmembers()
        return True
    except (tarfile.TarError, EOFError, ValueError, OSError):
        return False


GENERATORS = {"filesplit": Filesplit, "job": Job}
