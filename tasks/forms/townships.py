"""Township names on forms → township codes, through the dated alias table.

Exact matches only, after folding width and whitespace: 章谷 / 章谷镇 / 巴底乡 (only up to 2012).
Anything else is an error that names the value and what it probably meant — a former name valid
at another date, the paired township of a Chenghua helper unit, or the closest valid names.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

import pandas as pd

#: Traditional → simplified for the characters of Danba's and Chenghua's place names (and the
#: common 乡/镇/街道 suffixes). A name written in traditional characters resolves, recorded as a
#: coercion; a deliberately small table, not a general converter.
TRADITIONAL_TO_SIMPLIFIED = str.maketrans({
    "鄉": "乡", "鎮": "镇", "聶": "聂", "東": "东", "橋": "桥", "門": "门", "邊": "边", "紮": "扎",
    "嶽": "岳", "穀": "谷", "馬": "马", "區": "区", "縣": "县", "街": "街", "華": "华", "龍": "龙",
    "蓮": "莲", "雙": "双", "灣": "湾", "設": "设", "躍": "跃", "萬": "万", "場": "场", "蹺": "跷",
    "燈": "灯", "龜": "龟", "牆": "墙", "際": "际", "壩": "坝", "雲": "云", "蘆": "芦", "壇": "坛",
})


def fold_name(text: str) -> str:
    """NFKC, no whitespace of any width, traditional characters of local names simplified."""
    folded = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text)).replace("\u3000", ""))
    return folded.translate(TRADITIONAL_TO_SIMPLIFIED)


@dataclass(frozen=True)
class Resolution:
    township_code: str | None
    name_zh: str | None = None
    alias_kind: str | None = None  # official / short / former; None when unresolved
    problem: str | None = None  # Chinese explanation when unresolved
    #: unresolved: the one township the department most probably meant (a typo's closest name, a
    #: former name's township, a helper unit's pair) — not also reported missing
    nearest_code: str | None = None


class TownshipResolver:
    """Resolves names valid during [start, end]; built once per submission period."""

    def __init__(
        self,
        townships: pd.DataFrame,
        aliases: pd.DataFrame,
        helper_units: pd.DataFrame,
        pairings: pd.DataFrame,
        start: date,
        end: date,
    ) -> None:
        self.start, self.end = start, end
        names = dict(zip(townships["township_code"].astype(str), townships["name_zh"], strict=True))
        self._official = names
        self._valid: dict[str, tuple[str, str]] = {}
        self._other_dates: dict[str, list[tuple[str, date, date]]] = {}
        for row in aliases.itertuples(index=False):
            alias = fold_name(str(row.alias))
            # open-ended (None) bounds are valid since / until forever
            vf = date.min if _none(row.valid_from) else _as_date(row.valid_from)
            vt = date.max if _none(row.valid_to) else _as_date(row.valid_to)
            code = str(row.township_code)
            if vf <= end and vt >= start:
                self._valid[alias] = (code, str(row.alias_kind))
            else:
                self._other_dates.setdefault(alias, []).append((code, vf, vt))
        self.expected_codes = tuple(
            sorted(
                str(row.township_code)
                for row in townships.itertuples(index=False)
                if (_none(row.valid_from) or _as_date(row.valid_from) <= end)
                and (_none(row.valid_to) or _as_date(row.valid_to) >= start)
            )
        )
        helper_names = dict(zip(helper_units["helper_unit_id"].astype(str), helper_units["name_zh"], strict=True))
        self._helper_to_township: dict[str, tuple[str, str, bool]] = {}
        for row in pairings.itertuples(index=False):
            helper = helper_names.get(str(row.helper_unit_id))
            if helper:
                verified = bool(row.verified) and str(row.verified).lower() != "false"
                for variant in {helper, helper.removesuffix("街道")}:
                    self._helper_to_township[fold_name(variant)] = (
                        str(row.township_code), helper, verified
                    )

    def resolve(self, raw_name: str) -> Resolution:
        name = fold_name(raw_name)
        if name in self._valid:
            code, kind = self._valid[name]
            return Resolution(code, self._official.get(code), kind)
        if not name:
            return Resolution(None, problem="乡镇名称为空")
        if name in self._other_dates:
            code, vf, vt = self._other_dates[name][0]
            current = self._official.get(code, code)
            if vf == date.min:
                when = f"{vt.year}年及以前"
            elif vt == date.max:
                when = f"{vf.year}年起"
            else:
                when = f"{vf.year}–{vt.year}年间"
            return Resolution(
                None,
                problem=(
                    f"“{raw_name}”是{when}的名称，"
                    f"本报告期({self._period_label()})应为“{current}”"
                ),
                nearest_code=code,
            )
        if name in self._helper_to_township:
            code, helper, verified = self._helper_to_township[name]
            pairing = "" if verified else "(推定结对，未经核实)"
            return Resolution(
                None,
                problem=(
                    f"“{raw_name}”是成华区帮扶单位{helper}，不是丹巴县乡镇；"
                    f"是否指其结对乡镇“{self._official.get(code, code)}”{pairing}？"
                ),
                nearest_code=code if verified else None,
            )
        close = difflib.get_close_matches(name, list(self._valid), n=3, cutoff=0.5)
        hint = "、".join(dict.fromkeys(self._official.get(self._valid[c][0], c) for c in close))
        suffix = f"；最接近的有效名称: {hint}" if hint else ""
        nearest = difflib.get_close_matches(name, list(self._valid), n=1, cutoff=0.6)
        return Resolution(None, problem=f"“{raw_name}”不是本报告期有效的丹巴县乡镇名称{suffix}",
                          nearest_code=self._valid[nearest[0]][0] if nearest else None)

    def resolve_code(self, raw_code: str) -> Resolution:
        """A 9- or 12-digit division code (513323100 / 513323100000, as number or text) → the township
        valid at the period; anything else unresolved, saying why."""
        text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(raw_code)))
        if re.fullmatch(r"\d+\.0+", text):
            text = text.split(".")[0]
        if not text:
            return Resolution(None, problem="区划代码为空")
        if re.fullmatch(r"\d(\.\d+)?E\+?\d+", text, flags=re.IGNORECASE):
            return Resolution(None, problem=(f"区划代码“{raw_code}”被Excel显示为科学计数，后几位已丢失；"
                                             "请把该列设为文本格式后重新填写"))
        if not re.fullmatch(r"\d{9}|\d{12}", text):
            return Resolution(None, problem=f"“{raw_code}”不是9位或12位的区划代码")
        if len(text) == 12:
            if not text.endswith("000"):
                return Resolution(None, problem=f"“{raw_code}”是村级(12位)区划代码，不是乡镇代码")
            text = text[:9]
        if text in self.expected_codes:
            return Resolution(text, self._official.get(text), "code")
        if text in self._official:
            return Resolution(None, problem=(f"区划代码{text}({self._official[text]})在本报告期"
                                             f"({self._period_label()})无效"))
        return Resolution(None, problem=f"区划代码{text}不是本报告期丹巴县乡镇的代码")

    def code_problem(self, name_code: str, raw_code: str) -> str | None:
        """Why a row's 区划代码 disagrees with its (resolved) township name; None when they agree."""
        by_code = self.resolve_code(raw_code)
        if by_code.township_code == name_code:
            return None
        name = self._official.get(name_code, name_code)
        if by_code.township_code is None:
            return f"{name}的区划代码应为{name_code}，表中写的“{raw_code}”无法识别: {by_code.problem}"
        return (f"{name}的区划代码应为{name_code}，表中写的{raw_code}是{by_code.name_zh}"
                f"({by_code.township_code})的代码；请核对乡镇名称和代码")

    def _period_label(self) -> str:
        """2017年5月 for a month, 2017年 for a whole year."""
        if (self.start.month, self.start.day, self.end.month, self.end.day) == (1, 1, 12, 31):
            return f"{self.start.year}年"
        return f"{self.start.year}年{self.start.month}月"

    def name_of(self, code: str) -> str:
        return self._official.get(code, code)


def _none(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT


def _as_date(value: object) -> date:
    if isinstance(value, date):
        return value if not isinstance(value, pd.Timestamp) else value.date()
    return pd.Timestamp(str(value)).date()
