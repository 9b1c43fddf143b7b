"""What `geryon load` takes from its sources: plain files only, links (to directories too)
left out and counted, and names a disk cannot hold refused naming the source."""

import io
import os
import tarfile

import pytest

from geryon.disks.errors import LoadError
from geryon.disks.sources import gather


def test_links_to_files_and_directories_are_left_out_and_named(tmp_path):
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "f").write_text("f\n")
    (src / "top").write_text("top\n")
    os.symlink(src / "dir", src / "linkdir")
    os.symlink(src / "top", src / "dir" / "linkfile")
    os.mkfifo(src / "fifo")
    skipped = []
    items = gather([src], skipped)
    assert [i.path for i in items] == ["top", "dir/f"]
    assert sorted(skipped) == sorted([str(src / "linkdir"), str(src / "dir" / "linkfile"),
                                      str(src / "fifo")])


def tar_with(path, names):
    with tarfile.open(path, "w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"hi\n"))
    return path


def test_a_tar_member_that_climbs_out_is_refused_naming_the_tar_and_member(tmp_path):
    archive = tar_with(tmp_path / "evil.tar", ["ok", "../../etc/passwd"])
    with pytest.raises(LoadError) as caught:
        gather([archive])
    assert str(caught.value) == (
        f"{archive}:../../etc/passwd: cannot be loaded: path '../../etc/passwd' has a '..' "
        "component, which could escape the disk; rename it, or leave it out of the sources")
    assert "geryon-load" not in str(caught.value)  # never the scratch chunk's name


def test_tar_names_are_made_canonical(tmp_path):
    archive = tar_with(tmp_path / "t.tar", ["./a/./b", "/abs"])
    assert [i.path for i in gather([archive])] == ["a/b", "abs"]
    bad = tar_with(tmp_path / "u.tar", ["c//d"])
    with pytest.raises(LoadError, match=r"u.tar:c//d: cannot be loaded: .*empty component"):
        gather([bad])
