"""common/fs.py: the one module for file-system safety."""

from __future__ import annotations

import pytest


def test_replace_dir_puts_the_old_folder_back_when_the_swap_fails(tmp_path):
    from common.fs import replace_dir

    target = tmp_path / "index"
    target.mkdir()
    (target / "precious").write_text("old")
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / "missing-tmp", target)  # the second rename fails
    assert (target / "precious").read_text() == "old"
    assert not list(tmp_path.glob(".index.old-*"))
