"""``duikou accounts``: add, list, link, password, disable — as an administrator types them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flows.cli import main
from tests.conftest import use_data_dir


def test_an_administrator_sets_up_a_clerk_and_hands_over_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with use_data_dir(monkeypatch, tmp_path / "data", DUIKOU_PUBLIC_URL="https://duikou.danba.example/"):
        assert main(["accounts", "add", "edu.zhang", "--name", "张老师", "--role", "clerk",
                     "--department", "education"]) == 0
        assert "账号 edu.zhang（张老师）已创建：填报员，部门 education" in capsys.readouterr().out

        assert main(["accounts", "add", "edu.wu", "--name", "吴", "--role", "clerk", "--department", "educaton"]) == 2
        assert "未知部门 'educaton'" in capsys.readouterr().err  # a typo names the valid ones
        assert main(["accounts", "add", "x.y", "--name", "某", "--role", "boss"]) == 2
        assert "未知角色 boss" in capsys.readouterr().err

        monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
        assert main(["accounts", "add", "lead.wang", "--name", "王局长", "--role", "reviewer", "--role", "approver",
                     "--password-stdin"]) == 0
        capsys.readouterr()

        assert main(["accounts", "link", "edu.zhang", "--hours", "2"]) == 0
        link = capsys.readouterr()
        assert link.out.startswith("https://duikou.danba.example/portal/link/") and "2 小时内有效" in link.err
        assert main(["accounts", "link", "nobody"]) == 2

        assert main(["accounts", "list"]) == 0
        listing = capsys.readouterr().out.splitlines()
        assert listing[0].split()[:4] == ["edu.zhang", "张老师", "填报员", "education"]
        assert listing[1].split()[:3] == ["lead.wang", "王局长", "审核、审批"]

        assert main(["accounts", "disable", "edu.zhang"]) == 0
        assert "已停用" in capsys.readouterr().out
        monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
        assert main(["accounts", "password", "lead.wang", "--password-stdin"]) == 2
        assert "密码至少10个字符" in capsys.readouterr().err
