"""Unit tests of the pure transforms on small inline data: numbers, periods, townships, rules."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from expectations.rules import evaluate_term, parse_rule_expression
from tasks.forms.number_text import parse_number
from tasks.forms.periods import Period, PeriodError, parse_declared_period, period_in_title
from tasks.forms.townships import TownshipResolver
from warehouse.refdata import reference_frames


@pytest.mark.parametrize(
    ("raw", "value", "coerced"),
    [
        (12, 12.0, False),
        (12.5, 12.5, False),
        ("1,234", 1234.0, True),
        ("１２３", 123.0, True),
        (" 45 ", 45.0, True),
        ("1,234,567.5", 1234567.5, True),
    ],
)
def test_numbers_parse_and_record_coercions(raw: object, value: float, coerced: bool) -> None:
    parsed = parse_number(raw)
    assert parsed.value == value
    assert (parsed.coercion is not None) == coerced
    assert parsed.error is None


def test_numbers_unit_suffix_only_when_declared() -> None:
    assert parse_number("12人", unit="人").value == 12.0
    assert parse_number("12人", unit="人次").error == "VALUE_NOT_NUMBER"


@pytest.mark.parametrize("token", ["—", "/", "无", "-"])
def test_null_tokens_are_null_and_recorded(token: str) -> None:
    parsed = parse_number(token)
    assert parsed.value is None and parsed.null_token == token and parsed.error is None


@pytest.mark.parametrize("raw", ["#DIV/0!", "#REF!", "#VALUE!", "#N/A"])
def test_excel_errors_are_errors(raw: str) -> None:
    assert parse_number(raw).error == "VALUE_EXCEL_ERROR"


@pytest.mark.parametrize("raw", ["十二", "12,34", "1.2.3", "abc"])
def test_garbage_is_not_a_number(raw: str) -> None:
    assert parse_number(raw).error == "VALUE_NOT_NUMBER"


def test_periods() -> None:
    assert parse_declared_period("2017-05", "month") == Period(2017, 5)
    assert parse_declared_period("2016", "year").end == date(2016, 12, 31)
    with pytest.raises(PeriodError):
        parse_declared_period("2017", "month")
    with pytest.raises(PeriodError):
        parse_declared_period("2017-13", "month")
    with pytest.raises(PeriodError):
        parse_declared_period("2017-05", "year")
    assert period_in_title("丹巴县2017年5月就业扶贫工作进展月报表", "month") == Period(2017, 5)
    assert period_in_title("丹巴县2016年贫困人口及农牧民收入年报表", "year") == Period(2016)
    assert period_in_title("就业扶贫工作进展月报表", "month") is None


def _resolver(start: date, end: date) -> TownshipResolver:
    ref = reference_frames()
    return TownshipResolver(ref.townships, ref.aliases, ref.helper_units, ref.pairings, start, end)


def test_township_names_are_dated() -> None:
    in_2011 = _resolver(date(2011, 1, 1), date(2011, 12, 31))
    in_2017 = _resolver(date(2017, 5, 1), date(2017, 5, 31))
    assert in_2011.resolve("巴底乡").township_code == "513323101"
    wrong = in_2017.resolve("巴底乡")
    assert wrong.township_code is None and "巴底镇" in (wrong.problem or "")
    assert in_2017.resolve("革什扎镇").township_code == "513323102"
    assert len(in_2017.expected_codes) == 15


def test_township_variants_and_hints() -> None:
    resolver = _resolver(date(2017, 5, 1), date(2017, 5, 31))
    assert resolver.resolve("章谷").township_code == "513323100"
    assert resolver.resolve("章谷镇\u3000").township_code == "513323100"
    assert resolver.resolve(" 巴旺乡 ").alias_kind == "official"
    typo = resolver.resolve("聂嘎乡")
    assert typo.township_code is None and "聂呷乡" in (typo.problem or "")
    helper = resolver.resolve("府青路街道")
    assert helper.township_code is None and "边耳乡" in (helper.problem or "")


def test_rule_expressions_are_restricted() -> None:
    expr = parse_rule_expression("100 <= a / b <= 3000")
    assert expr.names == {"a", "b"}
    for bad in ["__import__('os')", "a.b <= 1", "a <= 'x'", "a", "a if b else c"]:
        with pytest.raises(ValueError):
            parse_rule_expression(bad)


def test_rule_evaluation_is_vectorised_and_safe() -> None:
    frame = pd.DataFrame({"a": [200.0, 0.0, 5.0], "b": [1.0, 0.0, 0.0]})
    term = parse_rule_expression("100 <= a / b <= 3000").terms[1]
    out = evaluate_term(term, frame)
    assert out.iloc[0] == 200.0
    assert pd.isna(out.iloc[1])  # 0/0: no data, not a failure
    assert out.iloc[2] == float("inf")  # revenue with no visitors: fails the range
    assert list(frame.columns) == ["a", "b"]  # input untouched


@pytest.mark.parametrize(
    ("title", "period_type", "expected"),
    [
        ("丹巴县2017年5月就业扶贫工作进展月报表", "month", [Period(2017, 5)]),
        ("丹巴县2017年1-5月就业扶贫工作进展月报表", "month", [Period(2017, 5)]),
        ("丹巴县二〇一七年五月教育扶贫工作进展月报表", "month", [Period(2017, 5)]),
        ("丹巴县二〇一七年十二月教育扶贫工作进展月报表", "month", [Period(2017, 12)]),
        ("丹巴县旅游接待情况月报表(2017.5)", "month", [Period(2017, 5)]),
        ("丹巴县旅游接待情况月报表(2017.1)", "month", [Period(2017, 1), Period(2017, 10)]),
        ("丹巴县2016年贫困人口及农牧民收入年报表", "year", [Period(2016)]),
        ("丹巴县二〇一六年贫困人口及农牧民收入年报表", "year", [Period(2016)]),
        ("贫困人口及农牧民收入年报表", "year", []),
    ],
)
def test_periods_in_titles(title: str, period_type: str, expected: list[Period]) -> None:
    from tasks.forms.periods import periods_in_title

    assert list(periods_in_title(title, period_type)) == expected
