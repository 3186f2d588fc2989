"""tasks/files.py: the one atomic-write helper — whole or not at all, and each writer's file mode kept."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tasks.files import write_atomically, write_bytes_atomically, write_json_atomically, write_text_atomically
from tasks.landing.intake_tokens import create_token
from tasks.submission.journey import write_receipt


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_every_writer_gives_a_private_file_by_default(tmp_path: Path) -> None:
    """0600 (under the umask), as tempfile.mkstemp gave the copies this helper replaced."""
    private = 0o600 & ~_umask()
    write_bytes_atomically(tmp_path / "a" / "b.bin", b"\x00\x01")
    write_text_atomically(tmp_path / "c.txt", "报表\n")
    write_json_atomically(tmp_path / "d.json", {"名称": "教育局"})
    write_atomically(tmp_path / "e.bin", lambda tmp: tmp.write_bytes(b"x"))
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"  # the folder was made
    assert (tmp_path / "c.txt").read_text(encoding="utf-8") == "报表\n"
    assert (tmp_path / "e.bin").read_bytes() == b"x"
    assert [_mode(p) for p in (tmp_path / "a" / "b.bin", tmp_path / "c.txt", tmp_path / "d.json",
                               tmp_path / "e.bin")] == [private] * 4


def test_mode_0666_gives_what_open_would(tmp_path: Path) -> None:
    write_json_atomically(tmp_path / "outcomes.json", [], mode=0o666)
    (tmp_path / "plain.json").write_text("[]", encoding="utf-8")
    assert _mode(tmp_path / "outcomes.json") == _mode(tmp_path / "plain.json") == 0o666 & ~_umask()


def test_json_is_utf8_with_chinese_kept(tmp_path: Path) -> None:
    data = {"original_name": "教育局 2017年5月.xlsx", "size": 3, "at": object()}
    write_json_atomically(tmp_path / "r.json", data, indent=2, default=lambda _: "x")
    expected = json.dumps(data, ensure_ascii=False, indent=2, default=lambda _: "x")
    assert (tmp_path / "r.json").read_bytes() == expected.encode("utf-8")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "export.xlsx"
    target.write_bytes(b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_then_fail)
    with pytest.raises(TypeError):
        write_json_atomically(target, {"not json": object()})
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.xlsx"]


def test_receipts_and_intake_tokens_stay_private(tmp_path: Path) -> None:
    receipt, stored = tmp_path / "receipts" / "s1.json", tmp_path / "landing" / "s1.xlsx"
    write_receipt({"submission_id": "s1", "original_name": "表"}, receipt, stored)
    tokens = tmp_path / "secrets" / "intake-tokens.json"
    create_token(tokens, "edu", replace=False)
    written = [receipt, stored.with_name("s1.xlsx.receipt.json"), tokens]
    assert [_mode(p) & 0o077 for p in written] == [0, 0, 0]
    assert json.loads(receipt.read_text(encoding="utf-8"))["original_name"] == "表"
    assert sorted(p.name for p in receipt.parent.iterdir()) == ["s1.json"]  # no temporary beside it
