"""`geryon chunk`: the real command, run as a user would, with exact output and exit codes."""

import io
import os
import pty
import subprocess
import sys
import tarfile

import pytest

GERYON = os.path.join(os.path.dirname(sys.executable), "geryon")
COMMANDS = ["create", "ls", "put", "get", "cat", "rm", "stat", "fsck", "compact", "export",
            "import"]


def geryon(cwd, *args, input=b"", status=0):
    """Run `geryon chunk ARGS` in cwd; check the exit status; return (stdout, stderr)."""
    done = subprocess.run([GERYON, "chunk", *args], cwd=cwd, input=input,
                          capture_output=True, env={**os.environ, "TZ": "UTC"}, timeout=30)
    assert done.returncode == status, (done.stdout, done.stderr)
    return done.stdout.decode(), done.stderr.decode()


@pytest.fixture
def disk(tmp_path):
    """A chunk 'd0' in tmp_path holding notes.txt and mail/1, with known modes and times."""
    (tmp_path / "notes.txt").write_bytes(b"hello\n")
    os.utime(tmp_path / "notes.txt", (86400, 86400))
    geryon(tmp_path, "create", "-s", "1M", "d0")
    geryon(tmp_path, "put", "d0", "notes.txt")
    geryon(tmp_path, "put", "d0", "-", "mail/1", input=b"From: a\n")
    return tmp_path


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help_with_an_example(tmp_path, command):
    out, _ = geryon(tmp_path, *([command] if command else []), "-h")
    assert out.startswith(f"Usage: geryon chunk {command or ''}".rstrip())
    example = out.split("\n  Example:\n", 1)[1].split("\n\n")[0]
    assert f"geryon chunk {command or ''}" in example


def test_ls_stat_and_cat(disk):
    assert geryon(disk, "ls", "d0") == ("mail/\nnotes.txt\n", "")
    out, _ = geryon(disk, "ls", "-l", "d0", "notes.txt")
    assert out == "-rw-r--r--          6 1970-01-02 00:00 notes.txt\n"
    out, _ = geryon(disk, "ls", "-R", "d0")
    assert out == "mail/\nmail/1\nnotes.txt\n"
    assert geryon(disk, "ls", "d0", "mail/") == ("1\n", "")
    assert geryon(disk, "cat", "d0", "notes.txt", "mail/1") == ("hello\nFrom: a\n", "")
    out, _ = geryon(disk, "stat", "d0", "notes.txt")
    assert out == "path notes.txt\nkind file\nmode 0644\nsize 6\nmtime 86400.000000000\n"
    out, _ = geryon(disk, "stat", "d0")
    pairs = dict(line.split(" ") for line in out.splitlines())
    assert list(pairs) == ["capacity", "used", "free", "live", "files", "dirs", "log"]
    assert (pairs["capacity"], pairs["files"], pairs["dirs"]) == ("1048576", "2", "1")
    assert int(pairs["used"]) + int(pairs["free"]) == 1048576
    assert int(pairs["live"]) < int(pairs["used"])  # the group records put made are dead


def test_put_and_get_a_tree_keep_modes_and_times(disk):
    tree = disk / "src"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x").write_bytes(b"x" * 10000)
    (tree / "sub" / "x").chmod(0o600)
    os.utime(tree / "sub" / "x", (1000, 1000))
    os.utime(tree / "sub", (2000, 2000))
    geryon(disk, "put", "d0", "src", "copy")
    assert geryon(disk, "ls", "-R", "d0", "copy") == ("sub/\nsub/x\n", "")
    geryon(disk, "get", "d0", "copy", "back")
    assert (disk / "back" / "sub" / "x").read_bytes() == b"x" * 10000
    assert (disk / "back" / "sub" / "x").stat().st_mode & 0o777 == 0o600
    assert (disk / "back" / "sub" / "x").stat().st_mtime == 1000
    assert (disk / "back" / "sub").stat().st_mtime == 2000
    geryon(disk, "get", "d0", "mail/1")
    assert (disk / "1").read_bytes() == b"From: a\n"
    assert geryon(disk, "get", "d0", "notes.txt", "-") == ("hello\n", "")


def test_rm_is_all_or_nothing(disk):
    _, err = geryon(disk, "rm", "d0", "notes.txt", "mail", status=1)
    assert err == ("geryon: chunk d0: cannot remove 'mail': it is a directory that is not "
                   "empty; remove what it holds first, or remove it recursively\n")
    assert geryon(disk, "ls", "d0") == ("mail/\nnotes.txt\n", "")
    geryon(disk, "rm", "-r", "d0", "notes.txt", "mail")
    assert geryon(disk, "ls", "d0") == ("", "")
    out, _ = geryon(disk, "compact", "d0")
    assert out == "chunk d0: 526 B -> 48 B\n"


@pytest.mark.parametrize("args,message", [
    (["put", "d0", "notes.txt", "../x"],
     "chunk d0: path '../x' has a '..' component, which could escape the disk"),
    (["cat", "d0", "/etc/passwd"], "chunk d0: path '/etc/passwd' is absolute; paths on a "
                                   "disk are relative to its root (write 'etc/passwd')"),
    (["cat", "d0", "nope"], "chunk d0: 'nope' does not exist"),
    (["ls", "nope"], "chunk nope: no such file (geryon chunk create makes one)"),
    (["create", "d0"], "cannot create chunk d0: the file already exists; remove it or choose "
                       "another name"),
    (["create", "-s", "12Q", "d1"], "size '12Q' is not a byte count; write it as 4096, 512K, "
                                    "64M or 1G"),
    (["create", "-s", "1K", "d1"], "cannot create chunk d1: a capacity of 1024 bytes is "
                                   "outside 4 KiB to 4 GiB"),
])
def test_errors_say_what_and_exit_1(disk, args, message):
    assert geryon(disk, *args, status=1) == ("", f"geryon: {message}\n")


def test_a_full_disk_refuses(tmp_path):
    (tmp_path / "big").write_bytes(os.urandom(5000))
    geryon(tmp_path, "create", "-s", "4K", "small")
    _, err = geryon(tmp_path, "put", "small", "big", status=1)
    assert err == ("geryon: chunk small: no room to write 'big': it is 5000 bytes long, more "
                   "than a chunk of 4096 bytes can hold; split it into smaller files\n")
    (tmp_path / "big").write_bytes(os.urandom(4000))
    _, err = geryon(tmp_path, "put", "small", "big", status=1)
    assert err == ("geryon: chunk small: no room to write 'big': it needs 4051 bytes and 4048 "
                   "bytes are free; compact the chunk to reclaim what removed and replaced "
                   "files hold, or write to another disk\n")
    assert geryon(tmp_path, "ls", "small") == ("", "")


def test_fsck_finds_and_repairs_a_torn_tail(disk):
    # d0 holds: FILE notes.txt at 48, BEGIN at 111, DIR mail, FILE mail/1, COMMIT at 273.
    out, _ = geryon(disk, "fsck", "d0")
    assert out == ("chunk d0: sound; 5 records, 2 files, 1 directory; 321 B used of "
                   "1 MiB, 96 B reclaimable by compaction\n")
    with open(disk / "d0", "r+b") as f:
        f.truncate(318)
    _, err = geryon(disk, "ls", "d0")
    assert err == ("geryon: chunk d0: record at offset 111 begins a group of records that "
                   "was never committed; the chunk is open read-only, so it is read as if "
                   "cut there (111 B kept)\n")
    out, _ = geryon(disk, "fsck", "d0", status=1)
    assert out == ("chunk d0: 2 problems; 4 records, 1 file, 0 directories; 318 B used of "
                   "1 MiB, 207 B reclaimable by compaction\n"
                   "chunk d0: record at offset 273 is cut short: its head needs 48 bytes and "
                   "45 remain (a torn tail: opening the chunk for writing cuts it)\n"
                   "chunk d0: record at offset 111 begins a group of records that was never "
                   "committed (a torn tail: opening the chunk for writing cuts it)\n")
    out, _ = geryon(disk, "fsck", "--repair", "d0")
    assert out == ("chunk d0: record at offset 111 begins a group of records that was never "
                   "committed; the chunk was cut there (111 B kept)\n"
                   "chunk d0: sound; 1 record, 1 file, 0 directories; 111 B used of 1 MiB, "
                   "0 B reclaimable by compaction\n")


def test_fsck_repair_cuts_damage_inside(disk):
    with open(disk / "d0", "r+b") as f:
        f.seek(100)
        f.write(b"!")
    out, _ = geryon(disk, "fsck", "d0", status=1)
    assert out == ("chunk d0: record at offset 48 fails its checksum, and a sound record "
                   "follows at offset 111; the chunk is damaged inside, not torn at its end. "
                   "`geryon chunk fsck --repair d0` cuts it at offset 48, losing what follows; "
                   "or copy the chunk from a replica\n")
    _, err = geryon(disk, "put", "d0", "notes.txt", status=1)
    assert err.startswith("geryon: chunk d0: record at offset 48 fails its checksum")
    out, _ = geryon(disk, "fsck", "--repair", "d0")
    assert out.endswith("chunk d0: sound; 0 records, 0 files, 0 directories; 48 B used of "
                        "1 MiB, 0 B reclaimable by compaction\n")


def test_export_and_import_tar_streams(disk):
    tar = subprocess.run([GERYON, "chunk", "export", "d0"], cwd=disk, check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert archive.getnames() == ["mail", "mail/1", "notes.txt"]
    geryon(disk, "create", "d1")
    geryon(disk, "import", "-d", "old", "d1", input=tar)
    assert geryon(disk, "ls", "-R", "d1") == ("old/\nold/mail/\nold/mail/1\nold/notes.txt\n",
                                               "")
    geryon(disk, "export", "-o", "mail.tar", "d0", "mail")
    geryon(disk, "import", "d1", "mail.tar")
    assert geryon(disk, "cat", "d1", "1") == ("From: a\n", "")
    _, err = geryon(disk, "import", "d1", input=b"not a tar", status=1)
    assert err.startswith("geryon: chunk d1: cannot import the tar: it is not a tar archive")


def test_export_refuses_a_terminal(disk):
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([GERYON, "chunk", "export", "d0"], cwd=disk, stdout=follower,
                              stderr=subprocess.PIPE, timeout=30)
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 1
    assert done.stderr == (b"geryon: refusing to write a tar to a terminal; give -o FILE or "
                           b"send it down a pipe\n")
