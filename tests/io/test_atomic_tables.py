import os

import pytest

from feat2gs.errors import InputError
from feat2gs.io.atomic import atomic_write, atomic_write_text, ensure_writable_dir
from feat2gs.io.tables import markdown_table, text_table


def test_atomic_write_replaces_or_leaves_the_old_file(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "one")
    assert p.read_text() == "one"

    def broken(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(p, broken)
    assert p.read_text() == "one" and os.listdir(tmp_path) == ["a.txt"]  # no temporary left behind


def test_ensure_writable_dir(tmp_path):
    assert ensure_writable_dir(tmp_path / "x" / "y", "out").is_dir()
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="out: .*not a folder"):
        ensure_writable_dir(tmp_path / "f", "out")
    with pytest.raises(InputError, match="out: cannot write"):
        ensure_writable_dir(tmp_path / "f" / "sub", "out")
    assert sorted(os.listdir(tmp_path)) == ["f", "x"]


def test_tables():
    assert markdown_table(["a", "b"], [[1, "x|y"]]) == "| a | b |\n|---|---|\n| 1 | x\\|y |"
    assert text_table(["name", "n"], [["ab", 1]]).splitlines() == ["name  n", "----  -", "ab    1"]
