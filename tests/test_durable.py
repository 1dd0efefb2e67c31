"""privacy/durable.py, the one atomic-write helper: text or bytes, durable or atomic only, and
nothing left behind when the write fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy.durable import replace_durably


@pytest.mark.parametrize("sync", [True, False])
@pytest.mark.parametrize("private_tmp", [True, False])
def test_text_or_bytes_replace_the_file_whole_and_leave_no_temporary(tmp_path: Path, sync: bool, private_tmp: bool) -> None:
    path = tmp_path / "sub" / "out.json"  # the folder is made
    replace_durably(path, "first é\n", sync=sync, private_tmp=private_tmp)
    assert path.read_bytes() == "first é\n".encode()
    replace_durably(path, b"second", sync=sync, private_tmp=private_tmp)
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    replace_durably(path, "old")
    with pytest.raises(TypeError):
        replace_durably(path, 42, sync=False)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
