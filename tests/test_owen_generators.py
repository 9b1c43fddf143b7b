"""The task generators through the interface the scheduler uses: load(argv, data_dir) on
real files, filesplit with every flag, the job language (the man page's and seed's
examples, kinds, splits, the cross product of values), the limits, and the errors a
failed load gives."""

import hashlib
import io
import tarfile

import pytest

from geryon.errors import GeryonError
from geryon.owen import generators
from geryon.owen.generators import FORMATS, GeneratorError, TaskSpec, load
from geryon.owen.records import file2rec, read_results

NOTICE = (b"Inferno 4th Edition\n"
          b"\n"
          b"Copyright (c) 2005 Vita Nuova Holdings Limited\n"
          b"You may copy and redistribute the package as a whole,\n")


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "mytasks").write_bytes(NOTICE)
    (d / "tmp").mkdir()
    (d / "tmp" / "jobinput").write_bytes(b"one\ntwo\nthree\n")
    return d


def run(generator, results=None) -> bytes:
    """The result file a job makes when every task's output is results[n] (default: the
    md5sum of its input, as `test md5sum` gives), in reverse order of completion."""
    out = b""
    for task in reversed(generator.tasks()):
        output = results[task.n] if results else \
            (hashlib.md5(task.input).hexdigest() + "\n").encode()
        assert generator.verify(task.n, output) is None
        out += generator.record(task.n, output)
    return out


# -- filesplit ----------------------------------------------------------------------------

def test_the_seeds_first_example(data):
    g = load(["filesplit", "-l", "mytasks", "test", "md5sum"], data)
    lines = NOTICE.splitlines(keepends=True)
    assert g.tasks() == [TaskSpec(n, "test", ("md5sum",), line) for n, line in enumerate(lines)]
    assert (g.name, g.failure_limit, g.result_name) == ("filesplit", 5, "mytasks.result")
    assert g.description == "filesplit -l mytasks test md5sum"
    results = read_results(run(g))
    assert sorted(results) == [(n, (hashlib.md5(line).hexdigest() + "\n").encode())
                               for n, line in enumerate(lines)]
    assert all(len(out) == 33 for _, out in results)     # `data 33 <n>` as in the seed
    # the seed's check: line 3 is the one about copying
    assert dict(results)[3] == (hashlib.md5(lines[3]).hexdigest() + "\n").encode()


def test_the_block_form_is_arguments_like_any_other(data):
    g = load(["filesplit", "-l", "mytasks", "test", "{\n    md5sum\n    sleep 5\n}"], data)
    assert g.tasks()[0].args == ("{\n    md5sum\n    sleep 5\n}",)
    assert g.description == "filesplit -l mytasks test '{\n    md5sum\n    sleep 5\n}'"


def test_input_records_make_one_task_each(data, tmp_path):
    files = []
    for n, content in enumerate([b"first\n", b"", b"\x00binary\xff"]):
        files.append(tmp_path / f"f{n}")
        files[-1].write_bytes(content)
    (data / "recs").write_bytes(b"".join(file2rec(files)))
    g = load(["filesplit", "recs", "exec", "wc", "-c"], data)
    assert [t.input for t in g.tasks()] == [b"first\n", b"", b"\x00binary\xff"]
    assert g.tasks()[2].args == ("wc", "-c")


def test_flags(data):
    g = load(["filesplit", "-kav", "-ln", "-o", "out", "mytasks", "test", "cat"], data)
    assert (g.keep_failed, g.keep_all, g.verbose, g.lines, g.bare) == (True,) * 5
    assert g.result_name == g.result_path == "out"
    assert g.record(1, b"x\n") == b"x\n"                # -n: bare
    g = load(["filesplit", "-l", "-o/tmp/mytasks.out", "/tmp/jobinput", "test", "cat"], data)
    assert (g.result_path, g.result_name) == ("/tmp/mytasks.out", "mytasks.out")
    assert (g.keep_failed, g.keep_all, g.verbose, g.bare) == (False,) * 4
    g = load(["filesplit", "-l", "/tmp/jobinput", "test", "cat"], data)
    assert (g.result_path, g.result_name) == ("/tmp/jobinput.result", "jobinput.result")
    assert g.record(2, b"x\n") == b"data 2 2\nx\n"
    g = load(["filesplit", "-l", "--", "mytasks", "test", "-x"], data)
    assert g.tasks()[0].args == ("-x",)


def test_an_empty_result_is_a_failure(data):
    g = load(["filesplit", "-l", "mytasks", "test", "md5sum"], data)
    assert "empty result" in g.verify(0, b"")
    assert g.verify(0, b"\n") is None


@pytest.mark.parametrize("argv,words", [
    ([], "name a task generator"),
    (["nosuch"], "unknown task generator 'nosuch'; the generators are filesplit, job"),
    (["filesplit"], "give an input file and a job type; usage: filesplit [-kav]"),
    (["filesplit", "mytasks"], "give an input file and a job type"),
    (["filesplit", "-q", "mytasks", "test"], "unknown option -q; usage"),
    (["filesplit", "mytasks", "test", "-o"], "a header is 'data <nbytes> [name]'"),
    (["filesplit", "-o"], "option -o needs a value"),
    (["filesplit", "-o", "..", "mytasks", "test"], "names no file"),
    (["filesplit", "-l", "absent", "test"], "absent is not in the job's data directory; "
                                             "write it into the job's data/absent"),
    (["filesplit", "-l", "../data/mytasks", "test"], "not a name inside"),
    (["filesplit", "-l", "tmp", "test"], "tmp is not a regular file"),
    (["filesplit", "-l", "empty", "test"], "empty is empty; there is nothing to split"),
    (["filesplit", "mytasks", "test"], "bad record header at byte 0: b'Inferno 4th Edition'"
                                       "; a header is 'data <nbytes> [name]' and a newline "
                                       "(for one task per line, use filesplit -l)"),
    (["filesplit", "short", "test"], "ends inside the record at byte 0"),
    (["filesplit", "-l", "mytasks", "no/slash"], "'no/slash' is not a job type"),
])
def test_bad_loads_say_how_to_fix_them(data, argv, words):
    (data / "empty").write_bytes(b"")
    (data / "short").write_bytes(b"data 10\nabc")
    with pytest.raises(GeneratorError) as err:
        load(argv, data)
    assert words in str(err.value)
    assert isinstance(err.value, GeryonError)


def test_a_symbolic_link_out_of_the_data_directory_is_refused(data, tmp_path):
    (tmp_path / "secret").write_bytes(b"secret\n")
    (data / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(GeneratorError, match="leads out of the job's data directory"):
        load(["filesplit", "-l", "link", "test", "cat"], data)


def test_limits_name_themselves(data, monkeypatch):
    monkeypatch.setattr(generators, "MAX_TASKS", 3)
    with pytest.raises(GeneratorError, match=r"4 tasks, more than the limit of 3 \(MAX_TASKS\)"):
        load(["filesplit", "-l", "mytasks", "test", "cat"], data)
    monkeypatch.setattr(generators, "MAX_INPUT_BYTES", 10)
    with pytest.raises(GeneratorError, match=r"limit of 10 bytes \(MAX_INPUT_BYTES\)"):
        load(["filesplit", "-l", "mytasks", "test", "cat"], data)


def test_verify_and_record_refuse_unknown_tasks(data):
    g = load(["filesplit", "-l", "mytasks", "test", "cat"], data)
    with pytest.raises(GeneratorError, match="no task 4; the job's tasks are 0 to 3"):
        g.record(4, b"x")


def test_formats_give_each_generators_usage():
    assert set(FORMATS) == {"filesplit", "job"}
    assert FORMATS["filesplit"] == "filesplit [-kav] [-ln] [-o resultfile] file jobtype [arg...]"
    assert all("\n" not in usage for usage in FORMATS.values())


# -- job ----------------------------------------------------------------------------------

def test_the_man_pages_example(data):
    g = load(["job", "(job (file (path /tmp/jobinput) (split lines)) (task sometask))"], data)
    assert (g.name, g.failure_limit, g.result_name, g.output, g.script) == \
        ("job", 10, "result", "data", None)
    assert g.tasks() == [TaskSpec(n, "sometask", (), b"", (("jobinput", line),))
                         for n, line in enumerate([b"one\n", b"two\n", b"three\n"])]
    assert g.description == "job '(job (file (path /tmp/jobinput) (split lines)) (task sometask))'"


def test_the_papers_example_over_several_lines(data):
    (data / "myfile").write_bytes(b"a\nb\n")
    g = load(["job", "(job\n(file (path myfile) (split lines))\n(task exec md5sum))"], data)
    assert [t.files for t in g.tasks()] == [(("myfile", b"a\n"),), (("myfile", b"b\n"),)]


def test_stdin_lines_give_the_same_checksums_as_filesplit(data):
    spec = "(job (file (path mytasks) (split lines) (kind stdin)) (task exec md5sum))"
    g = load(["job", spec], data)
    f = load(["filesplit", "-l", "mytasks", "exec", "md5sum"], data)
    assert [t.input for t in g.tasks()] == [t.input for t in f.tasks()]
    assert read_results(run(g)) == read_results(run(f))


def test_the_cross_product_puts_the_right_values_in_each_task(data):
    spec = ('(job (value N (range "10")) (file (path tmp/jobinput) (split lines) (kind stdin))'
            ' (value L (for a b c)) (value C constant) (task exec echo "$N"))')
    g = load(["job", spec], data)
    tasks = g.tasks()
    assert len(tasks) == 10 * 3 * 3
    assert [t.n for t in tasks] == list(range(90))
    expected = [(str(n), line, letter) for n in range(10)
                for line in (b"one\n", b"two\n", b"three\n") for letter in "abc"]
    assert [(dict(t.env)["N"], t.input, dict(t.env)["L"]) for t in tasks] == expected
    assert all(t.env[-1] == ("C", "constant") and t.files == () for t in tasks)
    assert tasks[0].args == ("echo", "$N")


@pytest.mark.parametrize("range_,values", [
    ('"10"', list(range(10))),
    ("10", list(range(10))),                       # bare numbers, a kindness
    ('"3" "6"', [3, 4, 5]),
    ('"10" "0" "-3"', [10, 7, 4, 1]),
    ('"0" "10" "4"', [0, 4, 8]),
])
def test_ranges(data, range_, values):
    g = load(["job", f"(job (value I (range {range_})) (task exec true))"], data)
    assert [dict(t.env)["I"] for t in g.tasks()] == [str(v) for v in values]


def test_a_whole_file_goes_to_every_task(data):
    spec = ("(job (file (path mytasks) (name notice)) (file (path tmp/jobinput) (split "
            "lines) (size 2) (kind stdin)) (task exec cat notice))")
    tasks = load(["job", spec], data).tasks()
    assert [t.input for t in tasks] == [b"one\ntwo\n", b"three\n"]
    assert all(t.files == (("notice", NOTICE),) for t in tasks)


def test_directories_split_into_files_or_bundled(data):
    d = data / "inputs"
    (d / "sub").mkdir(parents=True)
    for name, content in [("a", b"A"), ("b", b"B"), ("c", b"C"), ("sub/d", b"D")]:
        (d / name).write_bytes(content)
    (d / "b").chmod(0o755)
    g = load(["job", "(job (file (path inputs) (split files) (size 2)) (task exec ls))"], data)
    assert [t.files for t in g.tasks()] == [
        (("inputs/a", b"A"), ("inputs/b", b"B")), (("inputs/c", b"C"), ("inputs/sub/d", b"D"))]
    g = load(["job", "(job (file (path inputs) (split files) (kind stdin)) (task exec wc))"],
             data)
    assert [t.input for t in g.tasks()] == [b"A", b"B", b"C", b"D"]
    g = load(["job", "(job (file (path inputs) (kind bundle) (name in)) (output bundle) "
              "(task exec ls))"], data)
    [task] = g.tasks()
    [(name, archive)] = task.files
    assert name == "in/"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["a", "b", "c", "sub/d"]
        assert tar.extractfile("sub/d").read() == b"D"
        assert members["b"].mode == 0o755 and members["a"].mode == 0o644
    assert g.output == "bundle"
    assert "not a tar archive" in g.verify(0, b"plain output")
    assert g.verify(0, archive) is None
    g = load(["job", "(job (file (path inputs)) (task exec ls))"], data)
    assert [n for n, _ in g.tasks()[0].files] == ["inputs/a", "inputs/b", "inputs/c",
                                                 "inputs/sub/d"]


def test_a_tar_file_is_a_bundle_as_it_is(data):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"X"))
    (data / "t.tar").write_bytes(out.getvalue())
    g = load(["job", "(job (file (path t.tar) (kind bundle) (name t)) (task exec ls))"], data)
    assert g.tasks()[0].files == (("t/", out.getvalue()),)


def test_results_and_scripts(data):
    g = load(["job", "(job (value I (range 3)) (task exec true) (script check.sh -v))"], data)
    assert g.script == ("check.sh", "-v")
    assert read_results(run(g, [b"zero\n", b"", b"two\n"])) == \
        [(2, b"two\n"), (1, b""), (0, b"zero\n")]


def test_an_unquoted_description_is_joined_again(data):
    g = load(["job", "(job", "(value", "I", "(for", "x", "y))", "(task", "exec", "true))"], data)
    assert [t.env for t in g.tasks()] == [(("I", "x"),), (("I", "y"),)]


@pytest.mark.parametrize("spec,words", [
    ("(job (task a)", "job: bad S-expression at byte 13: the list opened at byte 0 is not "
                      "closed; add ')'"),
    ("(job (task a)) x", "after the end of the S-expression"),
    ("(jab (task a))", "one list starting with job"),
    ("job", "one list starting with job"),
    ("(job (value I (range 3)))", "no (task TYPE arg...) clause"),
    ("(job (task a) (task b))", "two (task ...) clauses"),
    ("(job (task))", "(task) names no task type"),
    ("(job (task a/b))", "'a/b' is not a job type"),
    ("(job (tusk a))", "unknown clause (tusk ...); the clauses are file, value, task"),
    ("(job x (task a))", "x is not a clause"),
    ("(job (file (name x)) (task a))", "has no (path P)"),
    ("(job (file (path mytasks) (colour red)) (task a))", "unknown (colour ...) in (file"),
    ("(job (file (path mytasks) (path x)) (task a))", "has (path ...) twice"),
    ("(job (file (path mytasks) (split words)) (task a))", "(split words) should be"),
    ("(job (file (path mytasks) (kind pipe)) (task a))", "(kind pipe) should be data, stdin"),
    ("(job (file (path mytasks) (size 2)) (task a))", "needs (split lines) or (split files)"),
    ("(job (file (path mytasks) (split lines) (size 0)) (task a))", "a whole number from 1"),
    ("(job (file (path mytasks) (split files)) (task a))", "(split files) needs a directory"),
    ("(job (file (path tmp) (split lines)) (task a))", "(split lines) needs a file"),
    ("(job (file (path tmp) (kind stdin)) (task a))", "cannot be standard input"),
    ("(job (file (path mytasks) (kind bundle)) (task a))", "a bundle is a directory or a tar"),
    ("(job (file (path mytasks) (split lines) (kind bundle)) (task a))", "lines cannot be"),
    ("(job (file (path mytasks)) (file (path tmp/mytasks)) (task a))", "two files are named"),
    ("(job (file (path mytasks) (name a/b)) (task a))", "is not a file name"),
    ("(job (file (path mytasks) (kind stdin)) (file (path empty) (name e) (kind stdin)) "
     "(task a))", "are both (kind stdin); a task has one standard input"),
    ("(job (file (path ../x)) (task a))", "not a name inside the job's data directory"),
    ("(job (file (path absent)) (task a))", "absent is not in the job's data directory"),
    ("(job (file (path empty) (split lines)) (task a))", "is empty, so the job has no tasks"),
    ("(job (value I (for)) (task a))", "(value I ...) is empty"),
    ("(job (value I (range 0)) (task a))", "(value I ...) is empty"),
    ("(job (value I (range x)) (task a))", "takes whole numbers, not 'x'"),
    ("(job (value I (range 1 2 3 4)) (task a))", "write (range to)"),
    ("(job (value I (range 0 10 0)) (task a))", "cannot step by 0"),
    ("(job (value \"1x\" y) (task a))", "a tag names a shell variable"),
    ("(job (value I 1) (value I 2) (task a))", "two values are tagged I"),
    ("(job (value I) (task a))", "write (value TAG V)"),
    ("(job (value I (if x)) (task a))", "not (if x)"),
    ("(job (value I #ff#) (task a))", "wants a UTF-8 string"),
    ("(job (output tar) (task a))", "write (output data|bundle)"),
    ("(job (script a/b) (task a))", "needs a script name"),
    ("(job (value I (range 1000000000)) (task a))", "1000000000 tasks, more than the limit"),
])
def test_bad_job_descriptions_are_refused_with_the_reason(data, spec, words):
    (data / "empty").write_bytes(b"")
    (data / "tmp" / "mytasks").write_bytes(b"x")
    with pytest.raises(GeneratorError) as err:
        load(["job", spec], data)
    assert words in str(err.value)
    assert str(err.value).startswith("job: ")


def test_a_description_too_long_is_refused(data):
    spec = "(job (value I " + "x" * generators.MAX_SPEC_BYTES + ") (task a))"
    with pytest.raises(GeneratorError, match="MAX_SPEC_BYTES"):
        load(["job", spec], data)


def test_the_file_limit_names_itself(data, monkeypatch):
    d = data / "many"
    d.mkdir()
    for n in range(5):
        (d / str(n)).write_bytes(b"x")
    monkeypatch.setattr(generators, "MAX_FILES", 4)
    with pytest.raises(GeneratorError, match=r"more than 4 files \(MAX_FILES\)"):
        load(["job", "(job (file (path many) (split files)) (task a))"], data)


def test_a_job_with_no_description(data):
    with pytest.raises(GeneratorError, match="give the job's description"):
        load(["job"], data)
