"""The receipt as a page (tasks/portal/views.py): outcome first, each issue with where it is and its
怎样改正 from expectations/advice.py; after a root cause the rest is folded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from expectations.advice import advice_for
from expectations.declaration import load_declarations
from tasks.portal.blank_form import blank_form
from tasks.portal.views import STATUS_ZH, SubmissionLine, beijing, correction_download_name, receipt_page
from tasks.submission.journey import build_receipt, parse, receive, validate
from tests.helpers.blank_forms import fill_blank
from warehouse.refdata import reference_frames

DECLARATIONS = load_declarations()
LINE = SubmissionLine("0123456789abcdef", "2017-05", "卫健5月.xlsx", datetime(2017, 6, 8, 1, 30, tzinfo=UTC),
                      "rejected")


def test_a_form_of_another_department_shows_its_one_cause_and_folds_the_rest(tmp_path: Path) -> None:
    health = DECLARATIONS["health"]
    names = [ind.name for ind in health.indicators]
    values = {n: dict.fromkeys(names, 1) for n in range(15)}
    path = tmp_path / "卫健5月.xlsx"
    path.write_bytes(fill_blank(blank_form(health, "2017-05", reference_frames()).content, names, values))
    received = receive(path, "education", "2017-05")  # sent as education's return
    parsed = parse(received, reference_frames())
    validation = validate(parsed)
    receipt = build_receipt(received, parsed, validation, status=validation.outcome)
    page = receipt_page(receipt, LINE, "education")
    assert page.status_zh == "已退回" and page.done and page.root_cause
    assert [i.code for i in page.shown] == ["TITLE_DEPARTMENT_MISMATCH"] * len(page.shown)
    assert len(page.folded) >= 5 and {i.code for i in page.folded} >= {"COLUMN_MISSING"}
    cause = page.shown[0]
    assert cause.severity_zh == "严重" and cause.advice == advice_for("TITLE_DEPARTMENT_MISMATCH") == "报送本部门的报表"


def test_issues_read_in_chinese_with_their_place_and_advice() -> None:
    receipt = {"status": "quarantined", "summary_zh": "已暂存待核", "issues": [
        {"code": "TOWNSHIP_ALIAS", "severity": "info", "message": "“章谷”按章谷镇读取", "sheet": "报表", "row": 5},
        {"code": "TOTAL_MISMATCH", "severity": "critical", "message": "合计行与各乡镇之和不一致", "sheet": "报表",
         "row": 20, "column": "C列 在校学生数/小学"}]}
    page = receipt_page(receipt, LINE, "education")
    assert page.status_zh == "待核实" and not page.root_cause and page.folded == []
    assert [(i.code, i.where) for i in page.shown] == [("TOTAL_MISMATCH", "工作表“报表” 第20行 C列 在校学生数/小学"),
                                                       ("TOWNSHIP_ALIAS", "工作表“报表” 第5行")]
    assert page.shown[0].advice == "核对各乡镇数据和合计行，改正后重报" and page.shown[1].no_action
    pending = SubmissionLine("0123456789abcdef", "2017-05", "a.xlsx", LINE.received_at, "received")
    waiting = receipt_page(None, pending, "education")
    assert not waiting.done and waiting.outcome_zh.endswith("本页会自动刷新。")
    assert STATUS_ZH["duplicate"] == "重复" and LINE.received_zh == beijing(LINE.received_at) == "2017-06-08 09:30"
    assert correction_download_name("教育月报.xls") == "教育月报_更正.xlsx"
