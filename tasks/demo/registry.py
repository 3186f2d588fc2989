"""Synthetic 劳动力实名登记表 files: valid, unique GB 11643 IDs for any number of people.

Used by ``bench/registry.py`` (2 000 000 rows), the tests (a few dozen rows) and the demo
(:func:`county_snapshots`: consecutive snapshots of one county's labour force that meet given
head counts per township; ``tasks.demo.values`` decides the counts). Vectorised with numpy: the IDs
are built as an ``n × 18`` digit matrix. Every person is invented; the region prefix is Danba's
(513323) so the rows look like the county's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from expectations.registry_declaration import RegistryDeclaration
from tasks.registry.idcard import CHECK_CHARACTERS, WEIGHTS

REGION = "513323"
SURNAMES = list("张王李赵刘陈杨黄周吴徐孙马胡朱郭何罗高林")
GIVEN = list("明华军平建国强英兰芳玉秀珍伟勇杰娟霞丽敏")
TRADES = ["挖掘机驾驶", "电工", "焊工", "中式烹调", "家政服务", "民宿服务", "汽车维修", "砌筑工", "藏式绘画", "种植"]


def township_names() -> list[str]:
    """Official names of the townships valid in 2016–2017 (ref_township, before the 2019 reform)."""
    from tasks.demo.form_writer import township_codes
    from warehouse.refdata import reference_frames

    story = set(township_codes())
    townships = reference_frames().townships
    return [str(row.name_zh) for row in townships.itertuples(index=False) if row.township_code in story]


def registry_ids(n: int, snapshot: date, rng: np.random.Generator) -> tuple[pa.Array, np.ndarray]:
    """``n`` distinct valid IDs of people aged 16–54 at ``snapshot``, and whether each is male."""
    span_days = 38 * 365  # birth dates across 38 years: ages 16–54
    if n > span_days * 500:
        raise ValueError("too many people for distinct IDs in this generator")
    index = rng.permutation(n)
    day = index % span_days
    male = rng.random(n) < 0.52
    seq = (index // span_days) * 2 + male.astype(np.int64)  # odd for men, even for women
    first = np.datetime64(date(snapshot.year - 54, snapshot.month, 1)) + 1
    births = (first + day.astype("timedelta64[D]")).astype("datetime64[D]")
    ymd = births.astype(object)
    stamp = np.array([d.year * 10000 + d.month * 100 + d.day for d in ymd], dtype=np.int64)
    digits = np.zeros((n, 18), dtype=np.int64)
    digits[:, :6] = [int(c) for c in REGION]
    for pos in range(8):
        digits[:, 6 + pos] = stamp // 10 ** (7 - pos) % 10
    for pos in range(3):
        digits[:, 14 + pos] = seq // 10 ** (2 - pos) % 10
    check = np.frombuffer(CHECK_CHARACTERS.encode(), dtype=np.uint8)[(digits[:, :17] @ WEIGHTS) % 11]
    chars = (digits + 48).astype(np.uint8)
    chars[:, 17] = check
    raw = chars.tobytes()
    ids = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(np.arange(0, 18 * (n + 1), 18, dtype=np.int32)),
                                                 pa.py_buffer(raw)])
    return ids, male


def _choice(rng: np.random.Generator, values: list[str], n: int, p: list[float] | None = None) -> pa.Array:
    picks = rng.choice(len(values), size=n, p=p)
    return pa.array(values, type=pa.string()).take(pa.array(picks))


def registry_table(declaration: RegistryDeclaration, n: int, snapshot: date, seed: int = 8) -> pa.Table:
    """A registry of ``n`` people with the declaration's headers (all text, as exported)."""
    rng = np.random.default_rng(seed)
    ids, male = registry_ids(n, snapshot, rng)
    names = pa.array(
        np.char.add(np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)],
                    np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]).tolist(), type=pa.string())
    trained = rng.random(n) < 0.30
    second = trained & (rng.random(n) < 0.35)
    t1 = np.array(TRADES)[rng.integers(0, len(TRADES), n)]
    t2 = np.array(TRADES)[rng.integers(0, len(TRADES), n)]
    trades = np.where(second, np.char.add(np.char.add(t1, "、"), t2), t1)
    trades_arr = pa.array(trades.tolist(), type=pa.string(), mask=~trained)
    levels = declaration.column("certificate_level").values
    cert = pc.if_else(pa.array(trained), _choice(rng, list(levels[:4]), n, [0.4, 0.35, 0.2, 0.05]),
                      pa.scalar(None, pa.string()))
    income = rng.integers(0, 6000, n)
    columns = {
        "person_name": names,
        "id_number": ids,
        "sex": pa.array(np.where(male, "男", "女").tolist(), type=pa.string()),
        "ethnicity": _choice(rng, ["藏族", "汉族", "羌族"], n, [0.8, 0.18, 0.02]),
        "education_level": _choice(rng, list(declaration.column("education_level").values), n),
        "township": _choice(rng, township_names(), n),
        "village": _choice(rng, [f"{i}村" for i in ("甲居一", "甲居二", "聂呷", "八科", "水卡子", "二道桥")], n),
        "poor_household": _choice(rng, ["是", "否"], n, [0.3, 0.7]),
        "employment_status": _choice(rng, list(declaration.column("employment_status").values), n),
        "monthly_income_yuan": pa.array(income.astype(str).tolist(), type=pa.string()),
        "training_trades": trades_arr,
        "certificate_level": cert,
    }
    return pa.table({declaration.column(k).header: v for k, v in columns.items()})


def write_registry_csv(table: pa.Table, path: Path, encoding: str = "utf-8") -> Path:
    """CSV as a department exports it (header row first); ``gb18030`` as Chinese Windows writes it."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))
    data = sink.getvalue().to_pybytes()
    if encoding.lower().replace("-", "") not in ("utf8",):
        data = data.decode("utf-8").encode(encoding)
    path.write_bytes(data)
    return path


def write_registry_xlsx(table: pa.Table, path: Path, *, title: str | None = None,
                        saved_at: datetime | None = None) -> Path:
    """xlsx with text cells (as a careful department types IDs), optionally a title row above.

    ``saved_at`` fixes the document properties and zip entry times, so the same table gives the
    same bytes (the demo's files are deterministic)."""
    import io
    import zipfile

    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    from tasks.demo.form_render import deterministic_zip

    workbook = Workbook(write_only=True)
    if saved_at is not None:
        workbook.properties.created = workbook.properties.modified = saved_at
    sheet = workbook.create_sheet("实名登记")
    if title:
        sheet.append([title])
    sheet.append(table.column_names)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    for row in zip(*columns, strict=True):
        sheet.append(list(row))
    if saved_at is None:
        workbook.save(path)
        return path
    buffer = io.BytesIO()  # ExcelWriter directly: Workbook.save would stamp "modified" with now
    ExcelWriter(workbook, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    path.write_bytes(deterministic_zip(buffer.getvalue(), saved_at))
    return path


# ------------------------------------------------------------------------------ county snapshots
@dataclass(frozen=True)
class TownshipTargets:
    """What one township's part of a snapshot must count (the marts count exactly this)."""

    persons: int
    poor_persons: int
    persons_trained: int
    training_person_times: int  # trades listed in 参训工种; persons_trained ≤ this ≤ 3 × persons_trained
    certified_persons: int
    certified_mid_senior_persons: int

    def __post_init__(self) -> None:
        if not (0 <= self.poor_persons <= self.persons and 0 <= self.persons_trained <= self.persons
                and self.persons_trained <= self.training_person_times <= 3 * self.persons_trained
                and 0 <= self.certified_mid_senior_persons <= self.certified_persons <= self.persons_trained):
            raise ValueError(f"inconsistent township targets: {self}")


#: employment mix of the labour force [A] (declaration order of 就业状态); the poor work more often
#: on public-welfare posts (公益性岗位) and near home, less often outside the province
EMPLOYMENT_MIX = (0.20, 0.22, 0.14, 0.20, 0.14, 0.05, 0.05)
EMPLOYMENT_MIX_POOR = (0.24, 0.26, 0.12, 0.15, 0.08, 0.02, 0.13)
#: monthly income range (元) per employment status [A]; 未就业 has none
_INCOME_RANGE = ((0, 0), (800, 2600), (1500, 3600), (2500, 5200), (3000, 6800), (1500, 8000), (600, 1300))
#: 技能培训 trades of the county's programme [A]
DEMO_TRADES = ("挖掘机驾驶", "电工", "焊工", "中式烹调", "藏餐烹饪", "家政服务", "民宿服务", "乡村旅游接待",
               "汽车维修", "砌筑工", "藏绣", "中药材种植", "果树种植")
#: of the certificates at 中级工 or above: 中级工, 高级工, 技师, 高级技师 [A]
_MID_SENIOR_SPLIT = (0.78, 0.18, 0.035, 0.005)
_TIBETAN_FIRST = ("格桑", "泽仁", "次仁", "扎西", "益西", "阿旺", "尼玛", "达瓦", "洛绒", "格绒", "四郎", "根秋",
                  "贡布", "降央", "仁青", "曲批")
_TIBETAN_MALE = ("多吉", "扎西", "降措", "泽仁", "次仁", "尼玛", "达瓦", "洛绒", "平措", "邓珠", "彭措", "嘉措")
_TIBETAN_FEMALE = ("拉姆", "卓玛", "央宗", "措姆", "志玛", "曲珍", "拥措", "德吉", "永措", "娜姆")
_HAN_GIVEN_2 = ("志强", "建华", "秀英", "玉兰", "海燕", "国平", "春梅", "德明", "晓东", "丽萍", "永福", "桂芳")
_CHINESE_NUMERALS = "一二三四五六七八九十"


def village_names(township: str, count: int) -> list[str]:
    """Invented administrative-village names of a township [A]: 巴旺一村, 巴旺二村, …"""
    short = township[:-1] if township[-1] in "乡镇" else township
    numerals = [_CHINESE_NUMERALS[i] if i < 10 else f"十{_CHINESE_NUMERALS[i - 10]}" for i in range(count)]
    return [f"{short}{n}村" for n in numerals]


def _top(keys: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask of the ``count`` largest keys (ties broken by position: deterministic)."""
    mask = np.zeros(len(keys), dtype=bool)
    if count > 0:
        mask[np.argsort(-keys, kind="stable")[:count]] = True
    return mask


def _names(rng: np.random.Generator, male: np.ndarray, han: np.ndarray) -> np.ndarray:
    n = len(male)
    first = np.array(_TIBETAN_FIRST)[rng.integers(0, len(_TIBETAN_FIRST), n)]
    second = np.where(male, np.array(_TIBETAN_MALE)[rng.integers(0, len(_TIBETAN_MALE), n)],
                      np.array(_TIBETAN_FEMALE)[rng.integers(0, len(_TIBETAN_FEMALE), n)])
    given = np.where(rng.random(n) < 0.6, np.array(_HAN_GIVEN_2)[rng.integers(0, len(_HAN_GIVEN_2), n)],
                     np.array(GIVEN)[rng.integers(0, len(GIVEN), n)])
    han_name = np.char.add(np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)], given)
    return np.where(han, han_name, np.char.add(first, second))


def _employment(u: np.ndarray, poor: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """Status index per person: the inverse CDF of the township's (tilted) mix at ``u``."""
    out = np.empty(len(u), dtype=np.int64)
    for flag, mix in ((False, EMPLOYMENT_MIX), (True, EMPLOYMENT_MIX_POOR)):
        weights = np.array(mix) * tilt
        cdf = np.cumsum(weights / weights.sum())
        chosen = poor == flag
        out[chosen] = np.minimum(np.searchsorted(cdf, u[chosen], side="right"), len(mix) - 1)
    return out


def county_snapshots(
    declaration: RegistryDeclaration,
    snapshots: Sequence[tuple[date, Mapping[str, TownshipTargets]]],
    *,
    seed: int = 2017,
    leavers_share: float = 0.01,
) -> list[pa.Table]:
    """Consecutive registry snapshots of one county, each meeting its per-township targets exactly.

    The same people recur from snapshot to snapshot (same ID, sex, birth date, township, village,
    education): between two snapshots ``leavers_share`` of a township's people leave and the rest
    of the change is newcomers. Who is poor, trained, certified and employed is drawn once per
    person and ranked, so the trained of one snapshot are trained in the next one too. Every row is
    valid for the declaration (IDs, ages 16–54, enumerations). ``snapshots`` in time order; townships
    are resolved by their name at each snapshot date. Pure: no I/O; the same seed, the same tables.
    """
    from tasks.demo.form_writer import township_name_at  # the dated names the forms use, too

    codes = sorted({code for _, targets in snapshots for code in targets})
    rng = np.random.default_rng([seed, 11643])
    offsets: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for code in codes:
        offset, spans = 0, list[tuple[int, int]]()
        for s, (_, targets) in enumerate(snapshots):
            if s:
                offset += round(leavers_share * spans[-1][1])
            spans.append((offset, targets[code].persons if code in targets else 0))
        offsets[code] = [o for o, _ in spans]
        sizes[code] = max(o + n for o, n in spans)
    starts = dict(zip(codes, np.cumsum([0, *(sizes[c] for c in codes)])[:-1].tolist(), strict=True))
    total = sum(sizes.values())
    ids, male = registry_ids(total, snapshots[0][0], rng)
    birth_year = pc.cast(pc.utf8_slice_codeunits(ids, 6, 10), pa.int64()).to_numpy()
    ethnicity_u = rng.random(total)
    han = (ethnicity_u >= 0.82) & (ethnicity_u < 0.98)
    ethnicity = np.where(ethnicity_u < 0.82, "藏族",
                         np.where(han, "汉族", np.where(ethnicity_u < 0.99, "羌族", "彝族")))
    names = _names(rng, male, han)
    education_u = rng.random(total)
    keys = {k: rng.random(total) for k in ("poor", "train", "extra", "cert", "mid", "level", "income", "blank")}
    trade_picks = np.argsort(rng.random((total, len(DEMO_TRADES))), axis=1)[:, :3]
    tilt = {code: rng.uniform(0.7, 1.3, len(EMPLOYMENT_MIX)) for code in codes}
    villages = {code: rng.integers(0, rng.integers(6, 13), sizes[code]) for code in codes}
    employment_u = rng.random(total)
    statuses = declaration.column("employment_status").values
    levels = ("中级工", "高级工", "技师", "高级技师")
    trades = np.array(DEMO_TRADES)

    tables: list[pa.Table] = []
    for s, (snapshot, targets) in enumerate(snapshots):
        if s:  # a few people's work changes between snapshots
            changed = rng.random(total) < 0.06
            employment_u = np.where(changed, rng.random(total), employment_u)
        parts: list[dict[str, np.ndarray]] = []
        for code in codes:
            target = targets.get(code)
            if target is None or target.persons == 0:
                continue
            lo = starts[code] + offsets[code][s]
            at = np.arange(lo, lo + target.persons)
            age = snapshot.year - birth_year[at]
            poor = _top(-keys["poor"][at], target.poor_persons)
            weight = 1.0 + 2.0 * poor + 0.5 * (age < 46)  # the programme targets poor, younger people
            trained = _top(keys["train"][at] ** (1.0 / weight), target.persons_trained)
            extra = target.training_person_times - target.persons_trained
            second = trained & _top(np.where(trained, keys["extra"][at], -1.0), min(extra, target.persons_trained))
            third = trained & _top(np.where(second, keys["extra"][at], -1.0), max(0, extra - target.persons_trained))
            certified = trained & _top(np.where(trained, keys["cert"][at], -1.0), target.certified_persons)
            mid = certified & _top(np.where(certified, keys["mid"][at], -1.0), target.certified_mid_senior_persons)
            picks = trades[trade_picks[at]]
            listed = np.where(third, np.char.add(np.char.add(np.char.add(np.char.add(picks[:, 0], "、"), picks[:, 1]),
                                                             "、"), picks[:, 2]),
                              np.where(second, np.char.add(np.char.add(picks[:, 0], "、"), picks[:, 1]), picks[:, 0]))
            level_index = np.minimum(np.searchsorted(np.cumsum(_MID_SENIOR_SPLIT), keys["level"][at], side="right"), 3)
            level = np.where(mid, np.array(levels)[level_index],
                             np.where(certified, "初级工", np.where(trained & (keys["blank"][at] < 0.5), "无", "")))
            status = _employment(employment_u[at], poor, tilt[code])
            low = np.array([r[0] for r in _INCOME_RANGE])[status]
            high = np.array([r[1] for r in _INCOME_RANGE])[status]
            income = np.round((low + (high - low) * keys["income"][at]) / 10) * 10
            older = age >= 45
            education = np.where(
                education_u[at] < np.where(older, 0.22, 0.06), 0,
                np.where(education_u[at] < np.where(older, 0.62, 0.30), 1,
                         np.where(education_u[at] < np.where(older, 0.88, 0.70), 2,
                                  np.where(education_u[at] < np.where(older, 0.95, 0.84), 3,
                                           np.where(education_u[at] < np.where(older, 0.98, 0.93), 4, 5)))))
            town = township_name_at(code, snapshot)
            village = np.array(village_names(town, 13))[villages[code][at - starts[code]]]
            parts.append({
                "person_name": names[at], "id_number": np.asarray(ids.take(pa.array(at)).to_pylist()),
                "sex": np.where(male[at], "男", "女"), "ethnicity": ethnicity[at],
                "education_level": np.array(declaration.column("education_level").values)[education],
                "township": np.full(len(at), town), "village": village,
                "poor_household": np.where(poor, "是", "否"), "employment_status": np.array(statuses)[status],
                "monthly_income_yuan": np.where(status == 0, -1, income).astype(np.int64),
                "training_trades": np.where(trained, listed, ""), "certificate_level": level,
            })
        columns: dict[str, pa.Array] = {}
        for name in parts[0]:
            values = np.concatenate([p[name] for p in parts])
            if name == "monthly_income_yuan":
                columns[name] = pa.array(values, pa.int64(), mask=values < 0)
            else:
                columns[name] = pa.array(values.tolist(), pa.string(), mask=values == "")
        tables.append(pa.table({declaration.column(k).header: v for k, v in columns.items()}))
    return tables
