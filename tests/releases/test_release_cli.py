"""``duikou release …`` and ``duikou followups explain`` as an official types them (SQLite data directory):
exit 0 for what was done, 2 with one line naming why for what was refused, 1 when verify differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from duikou_settings import get_settings
from flows.cli import main
from flows.warehouse_access import open_warehouse
from tests.conftest import use_data_dir
from tests.releases.test_release_signoff import fill


def test_release_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with use_data_dir(monkeypatch, tmp_path / "data"):
        engine = open_warehouse(get_settings())
        fill(engine)
        assert main(["release", "draft", "--kind", "annual", "--period", "2016", "--by", "nobody"]) == 2
        assert "未知账号" in capsys.readouterr().err
        assert main(["release", "draft", "--kind", "annual", "--period", "2016", "--by", "prep"]) == 0
        out = capsys.readouterr().out
        assert "annual-2016-v1  草稿" in out and "duikou release review annual-2016-v1" in out
        assert main(["release", "review", "annual-2016-v9", "--by", "rev"]) == 2
        assert "没有发布版本" in capsys.readouterr().err
        assert main(["release", "review", "annual-2016-v1", "--by", "prep"]) == 2  # preparer has no reviewer role
        assert main(["release", "review", "annual-2016-v1", "--by", "rev", "--note", "核对"]) == 0
        assert "待说明 1 flagged value" in capsys.readouterr().out
        assert main(["release", "approve", "annual-2016-v1", "--by", "boss"]) == 2
        fid = capsys.readouterr().err.split("（")[-1].split("）")[0]
        assert main(["followups", "explain", fid, "--by", "rev", "--note", "x"]) == 2  # not a poverty clerk
        assert main(["followups", "explain", fid, "--by", "pclerk", "--note", "新建光伏电站分红"]) == 0
        assert main(["release", "approve", "annual-2016-v1", "--by", "boss", "--note", "同意"]) == 0
        assert "已发布 published" in capsys.readouterr().out
        assert main(["release", "verify", "annual-2016-v1"]) == 0
        assert "一致 reproduced exactly" in capsys.readouterr().out
        assert main(["release", "show", "annual-2016-v1"]) == 0
        shown = capsys.readouterr().out
        assert "分管领导审批 分管领导丁（boss）: 同意" in shown and "无说明 unexplained: 0" in shown
        values = tmp_path / "data" / "reports" / "releases" / "annual-2016-v1" / "values.json"
        values.write_bytes(values.read_bytes().replace(b'"value":"', b'"value":"1', 1))  # someone edits the file
        assert main(["release", "verify", "annual-2016-v1"]) == 1
        assert "values.json" in capsys.readouterr().err
