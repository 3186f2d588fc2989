"""GB 11643 ID checks, vectorised (tasks/registry/idcard.py): one case per way an ID goes wrong."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from tasks.registry.idcard import check_character, check_ids

SNAPSHOT = date(2017, 5, 31)


def make_id(region: str = "513323", birth: str = "19900307", seq: str = "001") -> str:
    first17 = region + birth + seq
    return first17 + check_character(first17)


def test_check_character_matches_the_published_example() -> None:
    # GB 11643-1999 appendix example: 11010519491231002X
    assert check_character("11010519491231002") == "X"
    assert check_character("44052418800101001") == "4"
    with pytest.raises(ValueError):
        check_character("1234")


def test_each_failure_is_told_apart() -> None:
    good = make_id()
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    cases = {
        "good": good,
        "lower_x_padded": " 11010519491231002x ",
        "wrong_check": wrong_check,
        "excel": "5.13323E+17",
        "excel_lower": "5.13323e17",
        "short": good[:15],
        "letters": "51332319900307A01X",
        "feb30": make_id(birth="19900230"),
        "feb29_non_leap": make_id(birth="19900229"),
        "feb29_leap": make_id(birth="19920229"),
        "future": make_id(birth="20300101"),
        "before_1900": make_id(birth="18991231"),
        "month13": make_id(birth="19901301"),
        "blank": "  ",
        "null": None,
    }
    result = check_ids(pa.array(list(cases.values()), type=pa.string()), SNAPSHOT)
    row = {name: i for i, name in enumerate(cases)}

    def flags(name: str) -> set[str]:
        i = row[name]
        return {f for f in ("missing", "excel_mangled", "bad_format", "bad_check_digit", "bad_birth_date")
                if bool(getattr(result, f)[i])}

    assert flags("good") == set() and result.valid[row["good"]]
    assert flags("lower_x_padded") == set() and result.normalised[row["lower_x_padded"]].as_py() == "11010519491231002X"
    assert flags("wrong_check") == {"bad_check_digit"}
    assert flags("excel") == {"excel_mangled"} and flags("excel_lower") == {"excel_mangled"}
    assert flags("short") == {"bad_format"} and flags("letters") == {"bad_format"}
    for name in ("feb30", "feb29_non_leap", "future", "before_1900", "month13"):
        assert flags(name) == {"bad_birth_date"}, name
    assert flags("feb29_leap") == set()
    assert flags("blank") == {"missing"} and flags("null") == {"missing"}


def test_sex_digit_and_age_at_the_snapshot() -> None:
    man = make_id(birth="19600601", seq="011")  # 17th digit 1: odd → man; birthday after 31 May
    woman = make_id(birth="19610531", seq="024")  # even → woman; birthday on the snapshot day
    result = check_ids(pa.array([man, woman]), SNAPSHOT)
    assert result.male.tolist() == [True, False]
    assert result.age.tolist() == [56, 56]
    assert result.birth_year.tolist() == [1960, 1961]


def test_seventeen_digit_numbers_identify_duplicates_after_normalising() -> None:
    a = "11010519491231002X"
    result = check_ids(pa.array([a, a.lower(), make_id()]), SNAPSHOT)
    assert result.number17[0] == result.number17[1] == 11010519491231002
    assert len(np.unique(result.number17)) == 2
