"""Synthetic 劳动力实名登记表 files: valid, unique GB 11643 IDs for any number of people.

Used by ``bench/registry.py`` (2 000 000 rows) and the tests (a few dozen rows). Vectorised
with numpy: the IDs are built as an ``n × 18`` digit matrix. Every person is invented; the region
prefix is Danba's (513323) so the rows look like the county's.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from expectations.registry_declaration import RegistryDeclaration
from tasks.idcard import CHECK_CHARACTERS, WEIGHTS

REGION = "513323"
SURNAMES = list("张王李赵刘陈杨黄周吴徐孙马胡朱郭何罗高林")
GIVEN = list("明华军平建国强英兰芳玉秀珍伟勇杰娟霞丽敏")
TRADES = ["挖掘机驾驶", "电工", "焊工", "中式烹调", "家政服务", "民宿服务", "汽车维修", "砌筑工", "藏式绘画", "种植"]


def township_names() -> list[str]:
    """Official names of the townships valid in 2016–2017 (ref_township)."""
    from warehouse.refdata import reference_frames

    return [str(name) for name in reference_frames().townships["name_zh"]]


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


def write_registry_xlsx(table: pa.Table, path: Path, *, title: str | None = None) -> Path:
    """xlsx with text cells (as a careful department types IDs), optionally a title row above."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("实名登记")
    if title:
        sheet.append([title])
    sheet.append(table.column_names)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    for row in zip(*columns, strict=True):
        sheet.append(list(row))
    workbook.save(path)
    return path
