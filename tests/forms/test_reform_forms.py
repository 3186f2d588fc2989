"""Returns on either side of the December 2019 township reform (issue 21).

A 2020 form lists the 12 units of today and loads; a 2019 form naming a unit the reform created,
or a 2020 form naming a township it abolished, is refused with the dated reason (the successor or
the predecessors from the crosswalk). The helper units' pairings are dated with the townships.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from expectations.declaration import load_declarations
from tasks.demo.form_writer import township_codes, write_form
from tasks.forms.townships import TownshipResolver
from tasks.submission.journey import parse, receive, validate
from tasks.validation.validate import Validation
from warehouse.refdata import ReferenceFrames, reference_frames

EDU = "education"


@pytest.fixture(scope="module")
def reference() -> ReferenceFrames:
    return reference_frames()


@pytest.fixture(scope="module")
def may_2017() -> pd.DataFrame:
    """An education return's rows for the 15 townships of 2017, in form units (plausible, consistent)."""
    rows = []
    for i, code in enumerate(township_codes()):
        primary, junior = 500 + 5 * i, 280 + 3 * i
        rows.append({
            "township_code": code, "school_age_children_persons": 830 + 10 * i,
            "enrolled_primary_persons": primary, "enrolled_junior_persons": junior,
            "enrolled_total_persons": primary + junior, "enrolled_poor_persons": 70 + i, "dropouts_persons": 0,
            "returned_to_school_ytd_persons": 0, "nutrition_beneficiaries_persons": primary + junior,
            "student_aid_ytd_person_times": 140 + i, "student_aid_ytd_yuan": round(15.5 + 0.1 * i, 2),
            "teacher_training_person_times": 2,
        })  # fmt: skip
    return pd.DataFrame(rows)


def _named(rows: pd.DataFrame, reference: ReferenceFrames, rename: dict[str, str]) -> pd.DataFrame:
    """``rows`` with a ``township`` column of official names (some replaced) instead of codes."""
    names = dict(zip(reference.townships["township_code"], reference.townships["name_zh"], strict=True))
    out = rows.drop(columns="township_code")
    out.insert(0, "township", [rename.get(names[c], names[c]) for c in rows["township_code"]])
    return out


def _submit(tmp_path: Path, rows: pd.DataFrame, period: str, reference: ReferenceFrames) -> Validation:
    path = write_form(tmp_path / f"edu-{period}.xlsx", load_declarations()[EDU], period, rows)
    return validate(parse(receive(path, EDU, period), reference))


def _on_units_of_2020(rows: pd.DataFrame) -> pd.DataFrame:
    units = township_codes(date(2020, 3, 1))
    assert len(units) == 12
    return rows.iloc[: len(units)].assign(township_code=list(units)).reset_index(drop=True)


def test_a_2020_form_on_the_new_units_loads(tmp_path: Path, reference: ReferenceFrames, may_2017: pd.DataFrame) -> None:
    result = _submit(tmp_path, _on_units_of_2020(may_2017), "2020-03", reference)
    assert result.outcome == "loaded" and not result.issues


def test_a_new_units_name_before_the_reform_is_refused_with_its_date(
    tmp_path: Path, reference: ReferenceFrames, may_2017: pd.DataFrame
) -> None:
    result = _submit(tmp_path, _named(may_2017, reference, {"聂呷乡": "甲居镇"}), "2019-11", reference)
    assert result.outcome == "rejected"
    unknown = next(i for i in result.issues if i.code == "TOWNSHIP_UNKNOWN")
    assert unknown.message == (
        "“甲居镇”是2020年1月1日起乡镇区划调整后的单位，由巴旺乡(部分)、聂呷乡调整而来；"
        "本报告期(2019年11月)尚未设立，应按调整前的乡镇填报"
    )


def test_an_abolished_townships_name_after_the_reform_is_refused_with_its_successor(
    tmp_path: Path, reference: ReferenceFrames, may_2017: pd.DataFrame
) -> None:
    rows = _named(_on_units_of_2020(may_2017), reference, {"墨尔多山镇": "梭坡乡"})
    result = _submit(tmp_path, rows, "2020-03", reference)
    assert result.outcome == "rejected"
    unknown = next(i for i in result.issues if i.code == "TOWNSHIP_UNKNOWN")
    assert unknown.message == (
        "“梭坡乡”自2020年1月1日起因乡镇区划调整撤销，其区域2020年起属墨尔多山镇；"
        "本报告期(2020年3月)应按调整后的乡镇填报"
    )
    assert "墨尔多山镇" in next(i.message for i in result.issues if i.code == "TOWNSHIP_MISSING")


def test_names_and_pairings_follow_the_period(reference: ReferenceFrames) -> None:
    def resolver(start: date, end: date) -> TownshipResolver:
        return TownshipResolver(reference.townships, reference.aliases, reference.helper_units, reference.pairings,
                                start, end, crosswalk=reference.crosswalk)  # fmt: skip

    dec_2019, jan_2020 = resolver(date(2019, 12, 1), date(2019, 12, 31)), resolver(date(2020, 1, 1), date(2020, 1, 31))
    assert len(dec_2019.expected_codes) == 15 and len(jan_2020.expected_codes) == 12
    # one name, two units: 巴旺乡 lost three villages to 甲居镇, so the 2020 巴旺乡 is a unit of its own
    assert dec_2019.resolve("巴旺乡").township_code == "513323201"
    assert jan_2020.resolve("巴旺乡").township_code == "513323R02"
    assert dec_2019.resolve("章谷镇").township_code == jan_2020.resolve("章谷镇").township_code == "513323100"
    # the helper unit names its paired township of the period (the pairing is carried, and assumed, after 2019)
    assert "巴旺乡”" in (dec_2019.resolve("猛追湾街道").problem or "")
    carried = jan_2020.resolve("保和街道").problem or ""
    assert "墨尔多山镇" in carried and "推定结对" in carried
