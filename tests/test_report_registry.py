"""The report's completeness pages show the labour registry like a form: its snapshots in the
department × period matrix (a missing quarter as 缺报) and a township drill-down counting people."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.report_quality import completeness_matrices, township_drilldown

DEPARTMENTS = {"labour_registry": "县人力资源和社会保障局(劳动力实名登记)", "labour": "县人力资源和社会保障局"}
CODES = ("513323201", "513323208")
TOWNSHIPS = pd.DataFrame({"township_code": list(CODES), "township_name": ["巴旺乡", "格宗乡"]})


def _summary() -> pd.DataFrame:
    rows = []
    for period, status, reported in (("2017-06", "on_time", 2), ("2017-09", "missing", 0)):
        rows.append({"department": "labour_registry", "period": period, "due_date": date(2017, int(period[5:]) + 1, 10),
                     "status": status, "expected": 1, "received": int(status != "missing"),
                     "on_time": int(status == "on_time"), "late": 0, "missing": int(status == "missing"),
                     "loaded": int(status != "missing"), "quarantined": 0, "rejected": 0,
                     "townships_expected": 2, "townships_reported": reported, "first_received_at": None})
    return pd.DataFrame(rows)


def test_registry_snapshots_in_the_matrix_and_people_in_the_drilldown() -> None:
    matrices, _ = completeness_matrices(_summary(), DEPARTMENTS)
    (matrix,) = matrices
    (row,) = matrix.rows
    assert row[0].text == DEPARTMENTS["labour_registry"] and matrix.head == ("部门", "6月", "9月")
    assert [c.text for c in row[1:]] == ["按时", "缺报 0/2"]
    towns = pd.DataFrame({"department": "labour_registry", "period": "2017-06", "township_code": list(CODES),
                          "reported": [True, False], "values_reported": [37, 0]})
    drill = township_drilldown(towns, "labour_registry", TOWNSHIPS, DEPARTMENTS)
    (year,) = drill.matrices
    cells = {r[0].text: r[1] for r in year.rows}
    assert cells["巴旺乡"].text == "已报 37" and cells["巴旺乡"].title == "2017年6月:已报 37 人"
    assert cells["格宗乡"].text == "未报"
    assert "劳动力实名登记表为全县一份名册快照(应报月份:3月、6月、9月、12月)" in drill.note
    assert drill.section.table is not None and "已报人数(人)" in " ".join(drill.section.table.head)
    form = township_drilldown(towns.assign(department="labour"), "labour", TOWNSHIPS, DEPARTMENTS)
    assert form.matrices[0].rows[0][1].title == "2017年6月:已报 37 项数值" and "名册" not in form.note
