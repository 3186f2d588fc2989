"""Demo data: the county's returns 2011–2017 as the departments would have sent them.

Why this module exists: the pipeline has no real submissions to run on, yet the demo must end
in the article's figures (domain.md §4) computed *from files* — read, normalised, validated and
aggregated — not typed in. So the demo invents plausible township-level values whose county
aggregates land exactly on the article's numbers, and this module writes them as real forms
(xlsx mostly, some GBK / UTF-8-BOM CSV and BIFF .xls) into ``landing/<department>/<period>/``,
each file dated (mtime) on the day it "arrived". A few submissions are deliberately flawed (domain.md §7) and
followed by a correction, and one good return is restated, so the demo exercises rejection,
quarantine and supersession too. The labour bureau's person-level 劳动力实名登记表 arrives
quarterly (2017-06, 2017-09): its head counts follow the demo's own labour returns per township
(one township planted outside the reconciliation tolerance), its trainings tell the article's
people-vs-人次 story (:func:`registry_targets`; the people themselves: ``tasks.demo.registry``).

The numbers live in ``tasks.demo.values`` (with ``tasks.demo.figures`` and
``tasks.demo.departments`` below it); this module writes the files that carry them.

- :func:`generate_demo` — writes the files (built on :func:`tasks.demo.values.demo_values` and
  :func:`tasks.demo.values.registry_targets`) and returns them as :class:`GeneratedFile` in
  arrival order, dressed per file (formats, header habits, quirks, flawed returns and their
  corrections, the restatement, a late and a missing return).

Everything is derived from ``seed`` through string-seeded :class:`random.Random` instances
(independent of PYTHONHASHSEED), so the same seed gives the same values and the same bytes.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from expectations.declaration import Declaration, load_declarations
from expectations.registry_declaration import load_registry_declarations
from tasks.demo.departments import RESTATED_PERIOD, RESTATEMENT_DELTA
from tasks.demo.figures import CODES, DEPARTMENTS, STORY_CODE, rng_for
from tasks.demo.form_writer import (
    FORMAT_SUFFIX,
    FormFormat,
    HeaderStyle,
    TotalPosition,
    form_title,
    period_start,
    township_name_at,
    write_form,
)
from tasks.demo.registry import county_snapshots, write_registry_csv, write_registry_xlsx
from tasks.demo.sequel import DEMO_THROUGH, STORY_THROUGH
from tasks.demo.values import (
    REGISTRY_SHORT,
    REGISTRY_SHORT_FACTOR,
    REGISTRY_SNAPSHOTS,
    final_values,
    in_span,
    registry_targets,
)
from warehouse.load import parse_period

#: county time: arrival datetimes are Beijing time, so mtimes do not depend on the host's zone
CST = timezone(timedelta(hours=8))

Kind = Literal["good", "flawed", "correction"]


@dataclass(frozen=True)
class GeneratedFile:
    """One file written by :func:`generate_demo`.

    ``kind``: good (loads), flawed (must be rejected or quarantined; ``note`` says why, and
    :data:`FLAWED_EXPECTED` what the pipeline should make of it) or correction (supersedes an
    earlier file of the same department and period — a fixed flawed file, or a restatement of a
    good one when ``note == "restatement"``). For good files ``note`` lists the benign quirks
    the reader must cope with (alias headers, 章谷, numbers as text, 合计 at the top …).
    ``arrived_at`` is Beijing time and equals the file's mtime.
    """

    path: Path
    department: str
    period: str
    kind: Kind
    note: str
    fmt: FormFormat
    arrived_at: datetime


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

_SIGNATORIES: dict[str, tuple[str, str, str]] = {  # invented names [A]
    "education": ("泽仁拉姆", "李晓燕", "杨建华"),
    "health": ("王丽", "格绒降措", "陈志刚"),
    "labour": ("刘洋", "扎西", "周国强"),
    "tourism": ("阿依", "张海", "罗布"),
    "poverty": ("何静", "巴桑", "赵德明"),
}
_FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")
#: header-writing habits of the plain returns and how common they are [A]
HEADER_HABITS: tuple[HeaderStyle, ...] = ("declared", "fullwidth", "wrapped", "messy")
HEADER_HABIT_WEIGHTS = (55, 15, 15, 15)


@dataclass
class _Slot:
    """One file to write: which values, how they are dressed, when it arrives."""

    department: str
    period: str
    kind: Kind
    arrived_at: datetime
    values: pd.DataFrame
    fmt: FormFormat = "xlsx"
    note: str = ""
    suffix: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    quirks: list[str] = field(default_factory=list)

    def file_name(self) -> str:
        decl = load_declarations()[self.department]
        return f"{form_title(decl, self.period)}{self.suffix}{FORMAT_SUFFIX[self.fmt]}"


def _arrival(seed: int, department: str, period: str) -> datetime:
    """5th–12th of the following month (annual returns: in January), office hours."""
    rng = rng_for(seed, "arrival", department, period)
    year, month = parse_period(period)
    if month is None:
        day = date(year + 1, 1, rng.randint(8, 25))
    else:
        day = date(year + (month == 12), month % 12 + 1, rng.randint(5, 12))
    return datetime(
        day.year, day.month, day.day, rng.randint(8, 17), rng.randint(0, 59), rng.randint(0, 59), tzinfo=CST
    )


def _text_numbers(frame: pd.DataFrame, decl: Declaration, rng: random.Random) -> pd.DataFrame:
    """Three integer cells typed as text: '1,234' when large, full-width digits otherwise."""
    out = frame.astype(object)
    names = [i.name for i in decl.indicators if i.value_type == "integer"]
    for _ in range(3):
        name = rng.choice(names)
        row = rng.randrange(len(out))
        value = int(out.at[row, name])
        out.at[row, name] = f"{value:,}" if value >= 1000 else str(value).translate(_FULLWIDTH_DIGITS)
    return out


#: deliberately flawed returns (domain.md §7), each fixed by a correction N days later
FLAWED: dict[tuple[str, str], str] = {
    ("education", "2016-03"): "合计 row 在校学生数/小学 is 40 more than the sum of the township rows",
    ("health", "2017-02"): "township typed as 聂嘎乡 (typo of 聂呷乡)",
    ("tourism", "2016-08"): "梭坡乡 其中:过夜游客 exceeds 接待游客 (rule tourism_overnight_le_visitors)",
    ("labour", "2017-03"): "title says 2017年2月 but the return is delivered as 2017-03",
}
#: what the pipeline should make of each flawed return: (outcome, issue code of the catalogue)
FLAWED_EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("education", "2016-03"): ("quarantined", "TOTAL_MISMATCH"),
    ("health", "2017-02"): ("rejected", "TOWNSHIP_UNKNOWN"),
    ("tourism", "2016-08"): ("quarantined", "RULE_FAILED"),
    ("labour", "2017-03"): ("rejected", "PERIOD_MISMATCH"),
}
_CORRECTION_DELAY_DAYS = {"education": 3, "health": 2, "tourism": 4, "labour": 3}


def demo_as_of(through: str) -> date:
    """The demo's clock [A]: completeness (mart_completeness) is judged on the 20th of the month after
    the demo's last month — after that month's returns' deadline (10th + 3 grace days), before the
    next ones are due (the annual poverty return of the last year is due on 31 January)."""
    year, month = parse_period(through)
    return date(year + (month == 12), (month or 12) % 12 + 1, 20)


def late_returns(through: str) -> dict[tuple[str, str], datetime]:
    """The education return of the last month arrives after its deadline (10th + 3 grace days),
    before the clock: late, not missing [A]."""
    clock = demo_as_of(through)
    return {("education", through): datetime(clock.year, clock.month, 18, 10, 24, 9, tzinfo=CST)}


def missing_returns(through: str) -> frozenset[tuple[str, str]]:
    """The health return of the last month never arrives: its values exist in demo_values, no file
    is written [A]."""
    return frozenset({("health", through)})


#: the story's clock, late and missing return (the demo through STORY_THROUGH)
DEMO_AS_OF = demo_as_of(STORY_THROUGH)
LATE_RETURNS = late_returns(STORY_THROUGH)
MISSING_RETURNS = missing_returns(STORY_THROUGH)
RESTATEMENT_DELAY_DAYS = 7
#: how many plain returns get each format / quirk, of the story's 141 and of the sequel's plain
#: returns (the special ones are xlsx): (csv-gbk, csv-utf8-bom, xls, numbers as text, alias
#: headers, short name 章谷, full-width space)
_DEALT = {"story": (25, 2, 5, 3, 4, 3, 3), "sequel": (26, 2, 5, 3, 4, 3, 3)}


def _flawed_slots(seed: int, values: dict[tuple[str, str], pd.DataFrame]) -> list[_Slot]:
    """The four flawed returns and their corrections (the corrections carry the final values)."""
    slots: list[_Slot] = []
    for (dept, period), note in FLAWED.items():
        good = values[(dept, period)]
        bad = good
        options: dict[str, Any] = {}
        if dept == "education":
            options["totals"] = {"enrolled_primary_persons": int(good["enrolled_primary_persons"].sum()) + 40}
        elif dept == "health":
            options["township_names"] = {STORY_CODE["niexia"]: "聂嘎乡"}
        elif dept == "tourism":
            bad = good.copy()
            row = CODES.index(STORY_CODE["suopo"])
            visitors = float(good.at[row, "visitors_person_times"])
            bad.loc[row, "overnight_visitors_person_times"] = round(visitors * 1.3, 4)
        elif dept == "labour":
            options["title_period"] = "2017-02"
        arrived = _arrival(seed, dept, period)
        fixed_at = arrived + timedelta(days=_CORRECTION_DELAY_DAYS[dept])
        slots.append(_Slot(dept, period, "flawed", arrived, bad, note=note, options=options))
        slots.append(_Slot(dept, period, "correction", fixed_at, good, suffix="（更正）", note=f"corrects: {note}"))
    return slots


def _restatement_slots(seed: int, values: dict[tuple[str, str], pd.DataFrame], code: str) -> list[_Slot]:
    """labour 2016-06: loaded as sent, then restated a week later (+5 技能培训人次 in one township)."""
    final = values[("labour", RESTATED_PERIOD)]
    first = final.copy()
    first.loc[CODES.index(code), "skills_training_person_times"] -= RESTATEMENT_DELTA
    arrived = _arrival(seed, "labour", RESTATED_PERIOD)
    restated_at = arrived + timedelta(days=RESTATEMENT_DELAY_DAYS)
    return [
        _Slot("labour", RESTATED_PERIOD, "good", arrived, first, quirks=["restated a week later"]),
        _Slot("labour", RESTATED_PERIOD, "correction", restated_at, final, suffix="（修订）", note="restatement"),
    ]


def _plan(seed: int, through: str) -> list[_Slot]:
    """Every file of the demo through the month ``through``, dressed, in no particular order."""
    values, restated_code = final_values(seed)
    late, missing, clock = late_returns(through), missing_returns(through), demo_as_of(through)
    special = {*FLAWED, ("labour", RESTATED_PERIOD), *missing}
    keys = [key for key in values if in_span(key[1], through) and key not in special]
    story = [k for k in keys if in_span(k[1], STORY_THROUGH)]
    sequel = [k for k in keys if not in_span(k[1], STORY_THROUGH)]
    order = {d: i for i, d in enumerate(DEPARTMENTS)}
    slots: list[_Slot] = []
    for part, plain in (("story", story), ("sequel", sequel)):
        plain.sort(key=lambda k: (order[k[0]], k[1]))
        slots += _plain_slots(seed, plain, values, late, part)
    for slot in slots:  # the last annual return arrives in January: before the clock, not after
        if slot.arrived_at.date() >= clock:
            slot.arrived_at -= timedelta(days=(slot.arrived_at.date() - clock).days + 2)
    slots += _flawed_slots(seed, values) + _restatement_slots(seed, values, restated_code)
    for slot in slots:
        _dress(slot, seed)
    return slots


def _plain_slots(
    seed: int, plain: list[tuple[str, str]], values: dict[tuple[str, str], pd.DataFrame],
    late: dict[tuple[str, str], datetime], part: str,
) -> list[_Slot]:  # fmt: skip
    """The plain returns of one part (the story, the sequel), formats and quirks dealt out over the
    part so the proportions hold exactly (the story's dealt as ever: its files do not change)."""
    decls = load_declarations()
    n_gbk, n_bom, n_xls, n_text, n_alias, n_short, n_space = _DEALT[part]
    rng = rng_for(seed, "dressing") if part == "story" else rng_for(seed, "dressing", part)
    # the story's missing return, sent when the demo runs on, is dealt nothing: the story's other
    # files are dressed alike whatever the span
    order = [k for k in plain if part != "story" or k not in missing_returns(STORY_THROUGH)]
    rng.shuffle(order)
    fmt_of: dict[tuple[str, str], FormFormat] = dict.fromkeys(plain, "xlsx")
    cut = (n_gbk, n_gbk + n_bom, n_gbk + n_bom + n_xls)
    fmt_of.update(dict.fromkeys(order[: cut[0]], "csv-gbk"))
    fmt_of.update(dict.fromkeys(order[cut[0] : cut[1]], "csv-utf8-bom"))
    fmt_of.update(dict.fromkeys(order[cut[1] : cut[2]], "xls"))
    text_number_keys = set(order[cut[2] : cut[2] + n_text])  # xlsx: CSV is all text anyway
    rng.shuffle(order)
    alias_keys = set(order[:n_alias])
    short_name_keys = set(order[n_alias : n_alias + n_short])
    space_keys = set(order[n_alias + n_short : n_alias + n_short + n_space])

    slots: list[_Slot] = []
    for key in plain:
        dept, period = key
        slot = _Slot(dept, period, "good", late.get(key) or _arrival(seed, dept, period), values[key], fmt_of[key])
        if key in late:
            slot.quirks.append("arrives after its deadline")
        names: dict[str, str] = {}
        if key in alias_keys:
            slot.options["header_style"] = "alias"
            slot.quirks.append("alias headers")
        if key in short_name_keys:
            names[STORY_CODE["zhanggu"]] = "章谷"
            slot.quirks.append("short township name 章谷")
        if key in space_keys:
            codes = list(values[key]["township_code"])
            code = codes[rng_for(seed, "space", dept, period).randrange(len(codes))]
            names[code] = township_name_at(code, period_start(period)) + "\u3000"
            slot.quirks.append("trailing full-width space after a township name")
        if names:
            slot.options["township_names"] = names
        if key in text_number_keys:
            slot.values = _text_numbers(slot.values, decls[dept], rng_for(seed, "text", dept, period))
            slot.quirks.append("numbers as text")
        slots.append(slot)
    return slots


def _dress(slot: _Slot, seed: int) -> None:
    """Per-file habits: header style, 合计 position, 栏次 row, sheet name, 革什扎乡 vs 革什扎镇."""
    rng = rng_for(seed, "dress", slot.department, slot.period, slot.kind, slot.suffix)
    options = slot.options
    style: HeaderStyle = rng.choices(HEADER_HABITS, weights=HEADER_HABIT_WEIGHTS)[0]
    total: TotalPosition = "top" if rng.random() < 0.2 else "bottom"
    options.setdefault("header_style", style)
    options.setdefault("total_position", total)
    options.setdefault("column_numbers_row", rng.random() < 0.25)
    year, month = parse_period(slot.period)
    sheet = "Sheet1" if rng.random() < 0.7 else (f"{month}月" if month else f"{year}年")
    options.setdefault("sheet_name", sheet)
    # 革什扎乡 became 革什扎镇 between 2015-09 and 2016-07 (the alias table dates 革什扎镇 from
    # 2015-09-01, so earlier returns say 革什扎乡 by default); in that window about half the
    # returns still use the old name
    old_name = rng.random() < 0.5
    if month and (2015, 9) <= (year, month) <= (2016, 6) and old_name:
        names = dict(options.get("township_names", {}))
        if STORY_CODE["geshiza"] not in names:
            names[STORY_CODE["geshiza"]] = "革什扎乡"
            slot.quirks.append("former name 革什扎乡")
        options["township_names"] = names
    if options["total_position"] == "top":
        slot.quirks.append("合计 at the top")
    if options["column_numbers_row"]:
        slot.quirks.append("栏次 row")


def _write(slot: _Slot, landing_dir: Path) -> GeneratedFile:
    decl = load_declarations()[slot.department]
    path = landing_dir / slot.department / slot.period / slot.file_name()
    write_form(
        path,
        decl,
        slot.period,
        slot.values,
        fmt=slot.fmt,
        filled_on=slot.arrived_at.date(),
        signatories=_SIGNATORIES[slot.department],
        saved_at=(slot.arrived_at - timedelta(minutes=7)).replace(tzinfo=None),
        **slot.options,
    )
    stamp = slot.arrived_at.timestamp()
    os.utime(path, (stamp, stamp))
    note = slot.note if slot.kind != "good" else "; ".join(slot.quirks)
    return GeneratedFile(path, slot.department, slot.period, slot.kind, note, slot.fmt, slot.arrived_at)


# --------------------------------------------------------------------------------------------
# Labour registry (劳动力实名登记表): the snapshots' files (what they count: tasks.demo.values)
# --------------------------------------------------------------------------------------------

#: how each snapshot arrives: the 2017-06 one as xlsx (title row, IDs as text cells), the 2017-09
#: one as the CSV Chinese Windows exports (GB18030, no BOM)
REGISTRY_FORMATS: dict[str, FormFormat] = {"2017-06": "xlsx", "2017-09": "csv-gbk"}
def registry_title(period: str) -> str:
    year, month = parse_period(period)
    return f"丹巴县{year}年{month}月劳动力实名登记表"


def _registry_files(landing_dir: Path, seed: int) -> list[GeneratedFile]:
    """The registry snapshots, dated like the forms (5th–12th of the next month: on time)."""
    declaration = load_registry_declarations()["labour_registry"]
    targets = registry_targets(seed)
    ends = {p: (pd.Period(p, freq="M").end_time.date()) for p in REGISTRY_SNAPSHOTS}
    tables = county_snapshots(declaration, [(ends[p], targets[p]) for p in REGISTRY_SNAPSHOTS], seed=seed)
    files: list[GeneratedFile] = []
    for period, table in zip(REGISTRY_SNAPSHOTS, tables, strict=True):
        fmt = REGISTRY_FORMATS[period]
        arrived = _arrival(seed, "labour_registry", period)
        path = landing_dir / "labour_registry" / period / f"{registry_title(period)}{FORMAT_SUFFIX[fmt]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        end = ends[period]
        if fmt == "xlsx":
            title = f"{registry_title(period)}(截至{end.year}年{end.month}月{end.day}日)"
            saved = (arrived - timedelta(minutes=7)).replace(tzinfo=None)
            write_registry_xlsx(table, path, title=title, saved_at=saved)
            note = f"{table.num_rows} people; title row above the header, IDs as text cells"
        else:
            write_registry_csv(table, path, encoding="gb18030")
            note = f"{table.num_rows} people; GB18030 CSV without BOM"
        if period == REGISTRY_SHORT[0]:
            short = township_name_at(REGISTRY_SHORT[1], end)
            note += f"; planted: {short} {1 - REGISTRY_SHORT_FACTOR:.0%} short of the labour return"
        stamp = arrived.timestamp()
        os.utime(path, (stamp, stamp))
        files.append(GeneratedFile(path, "labour_registry", period, "good", note, fmt, arrived))
    return files


def generate_demo(landing_dir: Path, *, seed: int = 2017, through: str = STORY_THROUGH) -> list[GeneratedFile]:
    """Write every demo return through the month ``through`` under ``landing_dir/<department>/<period>/``
    and date it. The default is the article's story (2015-01 … 2017-11, 152 files); ``duikou demo``
    runs :data:`DEMO_THROUGH` (2020-12: the sequel across the 2019 reform, 2020 on the 12 units).

    Returns the files in arrival order (mtime, then path) — the order the pipeline should
    process them in: flawed files before their corrections, the labour 2016-06 return before
    its restatement.
    """
    landing_dir = Path(landing_dir)
    _check_through(through)
    files = [_write(slot, landing_dir) for slot in _plan(seed, through)] + _registry_files(landing_dir, seed)
    return sorted(files, key=lambda f: (f.arrived_at, str(f.path)))


def _check_through(through: str) -> None:
    try:
        month = parse_period(through)[1]
    except ValueError as exc:
        raise ValueError(f"through {through!r}: the demo's last month as YYYY-MM") from exc
    if month is None or not STORY_THROUGH <= through <= DEMO_THROUGH:
        raise ValueError(f"through {through!r}: the demo runs through a month from {STORY_THROUGH} to {DEMO_THROUGH}")


def main(argv: Sequence[str] | None = None, echo: Callable[[str], None] = print) -> int:
    """``python -m tasks.demo.data LANDING_DIR [--seed N]``"""
    parser = argparse.ArgumentParser(description="write the demo county returns into a landing directory")
    parser.add_argument("landing_dir", type=Path)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--through", default=DEMO_THROUGH, help=f"last month (default {DEMO_THROUGH})")
    args = parser.parse_args(argv)
    files = generate_demo(args.landing_dir, seed=args.seed, through=args.through)
    kinds = {k: sum(f.kind == k for f in files) for k in ("good", "flawed", "correction")}
    echo(f"wrote {len(files)} files to {args.landing_dir} ({kinds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
