"""The demo's labour registry: snapshots that agree with the demo's own labour returns (except the
one planted township), tell the article's people-vs-人次 story, are valid for the declaration, keep
the same people from quarter to quarter, and arrive on time; and ``duikou demo``'s own person key
when DUIKOU_PERSON_KEY is unset (``ingest`` keeps refusing without one).

The tables are checked with pyarrow here, not through the pipeline (tests/flows/test_flows.py runs the
demo's files through the nightly and compares the marts with the same targets)."""

from __future__ import annotations

import os
import stat
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from duikou_settings import get_settings, reset_settings_cache
from expectations.registry_declaration import load_registry_declarations
from tasks.demo.data import DEMO_AS_OF, _registry_files
from tasks.demo.form_writer import township_name_at
from tasks.demo.registry import TownshipTargets, county_snapshots
from tasks.demo.values import (
    PEOPLE_PER_TRAINING,
    REGISTRY_DRIFT,
    REGISTRY_SHORT,
    REGISTRY_SHORT_FACTOR,
    REGISTRY_SNAPSHOTS,
    demo_values,
    registry_targets,
)
from tasks.registry.idcard import check_ids

DECL = load_registry_declarations()["labour_registry"]
ENDS = {p: pd.Period(p, freq="M").end_time.date() for p in REGISTRY_SNAPSHOTS}


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    targets = registry_targets()
    built = county_snapshots(DECL, [(ENDS[p], targets[p]) for p in REGISTRY_SNAPSHOTS], seed=2017)
    return dict(zip(REGISTRY_SNAPSHOTS, built, strict=True))


def test_targets_agree_with_the_labour_returns_except_the_planted_township() -> None:
    values, targets = demo_values(), registry_targets()
    outside = []
    for period, towns in targets.items():
        form = values[("labour", period)].set_index("township_code")
        for code, t in towns.items():
            for count, column in (("persons", "rural_labour_total_persons"), ("poor_persons",
                                                                              "rural_labour_poor_persons")):
                relative = getattr(t, count) / form.at[code, column] - 1
                if abs(relative) > 0.05:  # the declaration's tolerance
                    outside.append((period, code, count, round(relative, 2)))
                else:
                    assert abs(relative) <= REGISTRY_DRIFT + 0.005
    short = round(REGISTRY_SHORT_FACTOR - 1, 2)
    assert outside == [(*REGISTRY_SHORT, "persons", short), (*REGISTRY_SHORT, "poor_persons", short)]
    for towns in targets.values():  # county scale: people trained < 人次, at the article's 2630 : 3540
        trained = sum(t.persons_trained for t in towns.values())
        times = sum(t.training_person_times for t in towns.values())
        assert trained < times and trained == round(times * PEOPLE_PER_TRAINING)
        assert 25_000 < sum(t.persons for t in towns.values()) < 35_000  # the county's rural labour force


def _counts(table: pa.Table) -> dict[str, TownshipTargets]:
    frame = table.to_pandas()
    trades = frame["参训工种"].fillna("")
    frame["times"] = trades.map(lambda s: len(s.split("、")) if s else 0)
    level = frame["证书等级"].fillna("无")
    frame["certified"] = level != "无"
    frame["mid"] = level.isin(DECL.column("certificate_level").mid_senior)
    out: dict[str, TownshipTargets] = {}
    for name, group in frame.groupby("乡(镇)"):
        out[str(name)] = TownshipTargets(
            persons=len(group), poor_persons=int((group["是否建档立卡贫困户"] == "是").sum()),
            persons_trained=int((group["times"] > 0).sum()), training_person_times=int(group["times"].sum()),
            certified_persons=int(group["certified"].sum()), certified_mid_senior_persons=int(group["mid"].sum()),
        )  # fmt: skip
    return out


def test_snapshots_meet_their_targets_with_valid_people(tables: dict[str, pa.Table]) -> None:
    targets = registry_targets()
    for period, table in tables.items():
        assert table.column_names == [c.header for c in DECL.columns]
        expected = {township_name_at(code, ENDS[period]): t for code, t in targets[period].items()}
        assert _counts(table) == expected
        checked = check_ids(table.column("公民身份号码").combine_chunks(), ENDS[period])
        assert bool(checked.valid.all()) and pc.count_distinct(table.column("公民身份号码")).as_py() == table.num_rows
        assert checked.age.min() >= 16 and checked.age.max() <= 54  # inside both sexes' labour-age band
        assert (checked.male == (table.column("性别").to_numpy(zero_copy_only=False) == "男")).all()
        for column in DECL.columns:
            if column.type == "enum":
                assert set(pc.unique(table.column(column.header)).drop_null().to_pylist()) <= set(column.values)
        employed = pc.not_equal(table.column("就业状态"), "未就业")
        income = table.column("月收入(元)")
        assert pc.all(pc.equal(pc.is_valid(income), employed)).as_py()  # income only for the employed


def test_the_same_people_recur_from_quarter_to_quarter(tables: dict[str, pa.Table]) -> None:
    june, september = (set(tables[p].column("公民身份号码").to_pylist()) for p in REGISTRY_SNAPSHOTS)
    assert len(june & september) / len(june) > 0.85  # leavers, and 岳扎乡's missing villages
    trained = {p: set(pc.filter(t.column("公民身份号码"), pc.is_valid(t.column("参训工种"))).to_pylist())
               for p, t in tables.items()}
    still_there = trained["2017-06"] & september
    assert len(still_there & trained["2017-09"]) / len(still_there) > 0.9  # trainings only add up


def test_the_files_arrive_on_time_and_read_as_written(tmp_path: Path, tables: dict[str, pa.Table]) -> None:
    from openpyxl import load_workbook

    files = _registry_files(tmp_path, 2017)
    assert [(f.department, f.period, f.kind) for f in files] == [("labour_registry", p, "good")
                                                                 for p in REGISTRY_SNAPSHOTS]
    for f in files:
        assert os.stat(f.path).st_mtime == f.arrived_at.timestamp()
        month = int(f.period[5:]) % 12 + 1
        assert (f.arrived_at.month, 5 <= f.arrived_at.day <= DECL.due_day + DECL.grace_days) == (month, True)
        assert f.arrived_at.date() < DEMO_AS_OF
    xlsx, csv = files
    rows = list(load_workbook(xlsx.path, read_only=True).active.iter_rows(values_only=True))
    assert str(rows[0][0]).startswith("丹巴县2017年6月劳动力实名登记表")
    assert list(rows[1]) == tables["2017-06"].column_names
    assert [r[1] for r in rows[2:]] == tables["2017-06"].column("公民身份号码").to_pylist()
    text = csv.path.read_bytes().decode("gb18030")
    assert text.splitlines()[0].startswith('"姓名","公民身份号码"') and "岳扎乡" in csv.note
    assert text.count("\n") == tables["2017-09"].num_rows + 1


# ---------------------------------------------------------------- duikou demo's person key


@pytest.fixture
def no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DUIKOU_PERSON_KEY", raising=False)
    reset_settings_cache()
    yield tmp_path / "data"  # type: ignore[misc]
    os.environ.pop("DUIKOU_PERSON_KEY", None)  # _demo_person_key sets it in this process
    reset_settings_cache()


def test_demo_makes_its_own_key_once_and_says_so(no_key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.demo_cli import DEMO_KEY_FILE, _demo_person_key

    _demo_person_key()
    path = no_key / DEMO_KEY_FILE
    first = path.read_text(encoding="ascii").strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 64
    assert get_settings().person_key is not None and get_settings().person_key.get_secret_value() == first
    out = capsys.readouterr().out
    assert "generated a random key for the demo only" in out and "secret store" in out and first not in out
    os.environ.pop("DUIKOU_PERSON_KEY")
    reset_settings_cache()
    _demo_person_key()  # a later demo run: the same key, so the same people keep their person keys
    assert get_settings().person_key.get_secret_value() == first  # type: ignore[union-attr]
    assert "using the demo's own key" in capsys.readouterr().out


def test_a_set_key_is_used_and_ingest_still_refuses_without_one(
    no_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main
    from flows.demo_cli import DEMO_KEY_FILE, _demo_person_key
    from tasks.demo.registry import registry_table, write_registry_csv

    monkeypatch.setenv("DUIKOU_PERSON_KEY", "s" * 40)
    reset_settings_cache()
    _demo_person_key()
    assert not (no_key / DEMO_KEY_FILE).exists() and capsys.readouterr().out == ""
    monkeypatch.delenv("DUIKOU_PERSON_KEY")
    reset_settings_cache()
    (no_key / "secrets").mkdir(parents=True)
    (no_key / DEMO_KEY_FILE).write_text("d" * 64, encoding="ascii")  # a demo key lying around is not used
    path = write_registry_csv(registry_table(DECL, 5, date(2017, 5, 31)), tmp_path / "r.csv")
    assert main(["ingest", str(path), "--department", "labour_registry", "--period", "2017-05"]) == 2
    assert "DUIKOU_PERSON_KEY is not set" in capsys.readouterr().err
