"""A release's report: ``<reports>/releases/<release-id>/``, rendered from its frozen rows only.

The county site's pages (``tasks.report.build_site.render_site``) are rendered from a
``ReportData`` made of the release's frozen KPIs, township values and pinned inputs (reference
data — township names, departments — as they are now), with the release's banner on every page
(草稿 until approved; 数据不完整 when drafted with missing returns; 已更正，见 vN once a restatement
is approved) and every county figure linked to ``provenance.html``. Added pages:

    provenance.html     per figure: 口径 (frozen KPI definition), value, coverage, the inputs behind it
                        (department, period, file, version, sha256, received); all inputs; the
                        sign-off trail; explanations of flagged values (footnotes); code and hashes
    corrections.html    更正说明 of a restated version: each moved figure old → new, the corrected returns
    values.json         the frozen figures' canonical bytes (``duikou release verify`` compares them)
    release.json        id, state, trail, provenance, as JSON

Re-rendered after every sign-off action (the banner and trail change, the figures never do). The
footnotes of an approved version are frozen at approval (``footnotes.json``). ``publish`` copies the
approved version to ``<reports>/published/<kind>/`` (swapped in whole).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, replace
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from sqlalchemy import Engine, select

from expectations.signoff import load_signoff
from tasks.files import write_text_atomically
from tasks.report.build_site import SUBTITLE, TITLE, TITLE_EN, _write_site, render_site
from tasks.report.data import load_report_data
from tasks.report.page import NAV, TEMPLATES
from tasks.report.release_marks import ReleaseMarks
from tasks.report.style import zh_punct
from tasks.report.view import NO_DATA, display_for, period_label_zh
from warehouse import schema
from warehouse.release_values import COUNTY_CODE, canonical_values, kpis_from, stored_values
from warehouse.releases import ReleaseRow, get_release, inputs_of, latest_approved, release_warnings, signoffs_of

BEIJING = timezone(timedelta(hours=8), "北京时间")
STATE_ZH = {"draft": "草稿", "in_review": "草稿（审核中）", "approved": "已发布"}
ACTION_ZH = {"draft": "编制", "redraft": "重新编制", "review": "审核通过", "approve": "审批发布", "return": "退回"}


def release_dir(reports_dir: Path, release_id: str) -> Path:
    return Path(reports_dir) / "releases" / release_id


def _frozen_day_zh(moment: Any) -> str:
    stamp = pd.Timestamp(moment)
    day = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).tz_convert(BEIJING)
    return f"{day.year}年{day.month}月{day.day}日"


def _bj(moment: Any) -> str:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return f"{stamp.tz_convert(BEIJING):%Y-%m-%d %H:%M}"


def _kpi_frame(rows: list[dict[str, Any]], definitions: list[dict[str, Any]]) -> pd.DataFrame:
    spec = {d["kpi"]: d for d in definitions}
    records = []
    for r in rows:
        if r["value_kind"] != "kpi" or r["name"] not in spec:
            continue
        used, expected = int(r["coverage_used"] or 0), int(r["coverage_expected"] or 0)
        records.append({"year": int(r["period"]), "kpi": r["name"], "label_zh": spec[r["name"]]["label_zh"],
                        "value": r["value"], "unit": r["unit"], "department": r["department"],
                        "coverage_used": used, "coverage_expected": expected,
                        "coverage": used / expected if expected else 0.0,
                        "publishable": bool(expected) and used >= expected,
                        "definition_zh": spec[r["name"]]["definition_zh"]})
    frame = pd.DataFrame(records)
    return frame.sort_values(["year", "kpi"], kind="stable").reset_index(drop=True) if not frame.empty else frame


def _values_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    records = [{"department": r["department"], "indicator": r["name"], "township_code": r["township_code"],
                "period": r["period"], "year": int(r["period"][:4]), "value": r["value"]}
               for r in rows if r["value_kind"] == "indicator"]
    frame = pd.DataFrame(records, columns=["department", "indicator", "township_code", "period", "year", "value"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame


def _marks(release: ReleaseRow, chain_title: str, engine: Engine, departments: dict[str, str]) -> ReleaseMarks:
    corrected_version = None
    if release.superseded_by:
        with engine.connect() as conn:
            corrected_version = get_release(conn, release.superseded_by).version
    missing = "、".join(f"{departments.get(m['department'], m['department'])}{period_label_zh(m['period'])}"
                        for m in release.provenance.get("missing_returns", []))
    return ReleaseMarks(
        release_id=release.release_id, title_zh=f"{chain_title} {release.scope.title_zh} 第{release.version}版",
        state=release.state, state_zh=STATE_ZH[release.state], frozen_at_zh=f"{_bj(release.frozen_at)} 北京时间",
        incomplete=release.incomplete, missing_zh=missing, corrected_by=release.superseded_by,
        corrected_by_version=corrected_version, restates=release.supersedes,
    )  # fmt: skip


def _footnotes(engine: Engine, release: ReleaseRow, target: Path) -> list[dict[str, Any]]:
    frozen = target / "footnotes.json"
    if release.state == "approved" and frozen.is_file():
        loaded: list[dict[str, Any]] = json.loads(frozen.read_text(encoding="utf-8"))
        return loaded
    with engine.connect() as conn:
        notes = [{**asdict(w), "explained": w.explained, "footnote": w.footnote}
                 for w in release_warnings(conn, release)]
    return notes


PROVENANCE = """{% extends "base.html" %}{% block main %}
<section id="about"><h2>数据来源与签批记录<span class="en">Provenance and sign-off</span></h2>
<dl class="facts"><dt>版本</dt><dd>{{ r.release_id }}（{{ state_zh }}）</dd><dt>数据截至</dt><dd>{{ frozen_at }}</dd>
<dt>程序版本</dt><dd>{{ code.package_version }}{% if code.git_commit %}（git {{ code.git_commit }}）{% endif %}</dd>
<dt>数值文件</dt><dd><a href="values.json">values.json</a> sha256 <code>{{ r.values_sha256 }}</code></dd></dl>
</section>
<section id="signoff"><h2>签批记录<span class="en">Sign-off trail</span></h2>
<table><thead><tr><th>步骤</th><th>操作</th><th>人员</th><th>角色</th><th>时间</th><th>意见</th></tr></thead><tbody>
{% for s in trail %}<tr class="signoff" data-action="{{ s.action }}"><td>{{ s.step_zh }}</td><td>{{ s.action_zh }}</td>\
<td>{{ s.acted_by_name }}（{{ s.acted_by }}）</td><td>{{ s.role }}</td><td>{{ s.at }}</td><td>{{ s.note }}</td></tr>
{% endfor %}</tbody></table>
{% if next_step %}<p class="note">下一步：{{ next_step }}</p>{% endif %}
</section>
<section id="figures"><h2>各项数字的来源<span class="en">Where each figure comes from</span></h2>
{% for k in figures %}<article class="card" id="k-{{ k.kpi }}-{{ k.year }}" data-kpi="{{ k.kpi }}" \
data-year="{{ k.year }}">
<h3>{{ k.label }}（{{ k.year }}年）：<span class="value">{{ k.value }}</span></h3>
<p class="definition">口径：{{ k.definition }}；计算方法 {{ k.method }}；覆盖 {{ k.coverage }}</p>
<p class="detail">依据报表：{% for i in k.inputs %}<a href="#in-{{ i }}">{{ i }}</a>{% if not loop.last %}、{% endif %}\
{% else %}（派生指标，见其基础指标）{% endfor %}</p>
</article>
{% endfor %}
</section>
<section id="footnotes"><h2>注释：被标记数值的说明<span class="en">Footnotes: flagged values</span></h2>
{% if footnotes %}<ol>{% for n in footnotes %}<li id="fn-{{ n.followup_id }}" class="footnote\
{% if not n.explained %} flag{% endif %}">{{ n.department }} {{ n.period }} {{ n.township }} {{ n.indicator }} \
= {{ n.value }}：{{ n.reason_zh }}。{% if n.explained %}{{ n.footnote }}{% else %}尚无说明（审批前须补充）\
{% endif %}</li>
{% endfor %}</ol>{% else %}<p class="empty">本版数字无被标记的数值。</p>{% endif %}
</section>
<section id="inputs"><h2>依据的报表版本<span class="en">Inputs (pinned ledger versions)</span></h2>
<table><thead><tr><th>部门</th><th>期别</th><th>文件</th><th>版本（提交编号）</th><th>sha256</th><th>收到时间</th></tr></thead><tbody>
{% for i in inputs %}<tr id="in-{{ i.submission_id }}"><td>{{ i.department }}</td><td>{{ i.period }}</td>\
<td>{{ i.original_name }}</td><td>{{ i.submission_id }}</td><td><code>{{ i.sha256[:16] }}…</code></td>\
<td>{{ i.at }}</td></tr>
{% endfor %}</tbody></table>
</section>
<section id="hashes"><h2>口径与声明文件<span class="en">Definition hashes</span></h2>
<table><tbody>{% for name, digest in hashes %}<tr><td>{{ name }}</td><td><code>{{ digest }}</code></td></tr>{% endfor %}
</tbody></table>
{% if missing %}<p class="flag">编制时缺报：{{ missing }}</p>{% endif %}
<p class="note">编制时未结的待跟进事项：{{ open_followups }} 项。</p>
</section>
{% endblock %}"""

CORRECTIONS = """{% extends "base.html" %}{% block main %}
<section id="corrections"><h2>更正说明<span class="en">Restatement notice</span></h2>
<p>本版（第{{ version }}版）更正 <a href="{{ root }}../../releases/{{ old_id }}/index.html">{{ old_id }}</a>。\
以下数字因部门更正报表而变动：</p>
<table id="moved"><thead><tr><th>指标</th><th>乡镇</th><th>期别</th><th>原数</th><th>更正后</th><th>变动</th></tr>\
</thead><tbody>
{% for c in changes %}<tr class="moved {{ c.value_kind }}" data-name="{{ c.name }}" data-period="{{ c.period }}">\
<td>{{ c.label }}</td><td>{{ c.township }}</td><td>{{ c.period }}</td><td class="num old">{{ c.old }}</td>\
<td class="num new">{{ c.new }}</td><td class="num">{{ c.diff }}</td></tr>
{% endfor %}</tbody></table>
<h3>更正的报表<span class="en">Corrected returns</span></h3>
<table><thead><tr><th>部门</th><th>期别</th><th>原版本</th><th>更正版本</th><th>更正文件</th><th>收到时间</th><th>说明</th></tr></thead><tbody>
{% for i in corrected %}<tr><td>{{ i.department }}</td><td>{{ i.period }}</td><td>{{ i.old }}</td><td>{{ i.new }}</td>\
<td>{{ i.original_name }}</td><td>{{ i.at }}</td><td>{{ i.note }}</td></tr>{% endfor %}</tbody></table>
</section>
{% endblock %}"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["zh"] = zh_punct  # the site's layout writes Chinese punctuation full-width (tasks/report/style.py)


def _page(source: str, **context: Any) -> str:
    """Render one of the release pages inside the site's base layout."""
    env = _ENV.overlay(loader=jinja2.DictLoader({**TEMPLATES, "page.html": source}))
    return env.get_template("page.html").render(nav=NAV, **context)


def _number_text(definition: dict[str, Any] | None, unit: str, value: Any) -> str:
    spec = kpis_from([definition])[0] if definition else None
    shown = display_for(spec, unit)
    return f"{shown.number_text(value)} {shown.unit}"


def render_release(engine: Engine, release: ReleaseRow, target: Path) -> dict[str, Any]:
    """The site of ``release`` (``render_site``'s shape) plus its own pages, from its frozen rows."""
    chain = load_signoff()
    with engine.connect() as conn:
        rows = stored_values(conn, release.release_id)
        inputs = inputs_of(conn, release.release_id)
        trail = signoffs_of(conn, release.release_id)
        names = dict(conn.execute(select(schema.ref_township.c.township_code, schema.ref_township.c.name_zh)).all())
    definitions = release.provenance["kpi_definitions"]
    current = load_report_data(engine)
    submissions = pd.DataFrame([
        {"submission_id": i["submission_id"], "department": i["department"],
         "department_name": current.departments.get(i["department"], i["department"]), "period": i["period"],
         "status": "loaded", "original_name": i["original_name"], "received_at": i["received_at"],
         "critical_issues": 0, "warning_issues": 0, "receipt_path": None} for i in inputs])
    marks = _marks(release, chain.kind(release.kind).title_zh, engine, current.departments)
    data = replace(current, kpis=_kpi_frame(rows, definitions), values=_values_frame(rows), submissions=submissions,
                   completeness=None, completeness_township=None, dq_scorecard=None, followups=None,
                   registry_county=None, registry_township=None, registry_category=None,
                   registry_reconciliation=None, generated_at=release.frozen_at, release=marks, published=())
    site = render_site(data, year=release.scope.year)
    common = {"title": TITLE, "title_en": TITLE_EN, "subtitle": SUBTITLE, "year": release.scope.year, "root": "",
              "generated": f"{_bj(release.frozen_at)} 北京时间", "no_data": NO_DATA, "release": marks, "published": (),
              # the page header's report date (the day it was frozen, Beijing) and the period it covers
              "report_date": _frozen_day_zh(release.frozen_at), "period": period_label_zh(release.period)}
    spec = {d["kpi"]: d for d in definitions}
    by_department: dict[str, list[str]] = {}
    for i in inputs:
        by_department.setdefault(str(i["department"]), []).append(str(i["submission_id"]))
    figures = []
    for r in rows:
        if r["value_kind"] != "kpi" or r["name"] not in spec:
            continue
        d = spec[r["name"]]
        year = int(r["period"])
        feeding = [str(i["submission_id"]) for i in inputs if i["department"] == r["department"]
                   and str(i["period"])[:4] == r["period"]] if d["method"] in ("sum", "weighted_mean", "ratio") else []
        figures.append({"kpi": r["name"], "year": year, "label": d["label_zh"], "definition": d["definition_zh"],
                        "method": d["method"], "value": _number_text(d, str(r["unit"]), r["value"]),
                        "coverage": f"{r['coverage_used']}/{r['coverage_expected']} 乡镇·期", "inputs": feeding})
    order = {d["kpi"]: i for i, d in enumerate(definitions)}
    figures.sort(key=lambda f: (-f["year"], order.get(f["kpi"], len(order))))
    frozen_notes = _footnotes(engine, release, target)
    footnotes = [{**n, "township": names.get(n["township_code"], n["township_code"]),
                  "value": "—" if n["value"] is None else f"{float(n['value']):g}"} for n in frozen_notes]
    step = None if release.state == "approved" else chain.kind(release.kind).steps[release.steps_done]
    trail_view = [{**s, "action_zh": ACTION_ZH.get(str(s["action"]), s["action"]), "at": f"{_bj(s['acted_at'])}"}
                  for s in trail]
    pages: dict[str, str] = site["pages"]
    pages["provenance.html"] = _page(
        PROVENANCE, **common, here="", page_title="数据来源与签批记录", r=release, state_zh=STATE_ZH[release.state],
        frozen_at=f"{_bj(release.frozen_at)} 北京时间", code=release.provenance["code"], trail=trail_view,
        next_step=None if step is None else f"{step.step_zh}（{step.role}）", figures=figures, footnotes=footnotes,
        inputs=[{**i, "at": _bj(i["received_at"])} for i in inputs],
        hashes=sorted(release.provenance["definition_hashes"].items()), missing=marks.missing_zh,
        open_followups=len(release.provenance.get("open_followups", [])),
    )  # fmt: skip
    if release.restatement:
        with engine.connect() as conn:
            ind = schema.ref_indicator
            labels = {(str(d), str(i)): str(label) for d, i, label in
                      conn.execute(select(ind.c.department, ind.c.indicator, ind.c.label_zh))}
        pages["corrections.html"] = _page(CORRECTIONS, **common, here="", page_title="更正说明",
                                          **corrections_view(release, spec, names, labels, current.departments))
    site["footnotes"] = frozen_notes  # as stored: footnotes.json keeps the values, not their text
    site["trail"] = trail
    site["data"] = data
    return site


def corrections_view(release: ReleaseRow, spec: dict[str, dict[str, Any]], names: dict[str, str],
                     labels: dict[tuple[str, str], str], departments: dict[str, str]) -> dict[str, Any]:
    """The 更正说明's rows: each moved figure (KPIs in their display unit; township values in their base
    unit) and each corrected return."""
    assert release.restatement is not None
    changes = []
    for c in release.restatement["changes"]:
        kpi = spec.get(c["name"]) if c["value_kind"] == "kpi" else None
        if kpi is not None:
            shown = display_for(kpis_from([kpi])[0], c["unit"])
            label = kpi["label_zh"]
            old, new = (f"{shown.number_text(v)} {shown.unit}" if v is not None else "—"
                        for v in (c["old_value"], c["new_value"]))
            diff = "—" if c["difference"] is None else f"{shown.number_text(c['difference'], signed=True)} {shown.unit}"
        else:
            label = labels.get((c["department"], c["name"]), c["name"])
            old, new = (f"{v:,.2f}".rstrip("0").rstrip(".") + f" {c['unit']}" if v is not None else "—"
                        for v in (c["old_value"], c["new_value"]))
            diff = "—" if c["difference"] is None else f"{c['difference']:+,.2f}".rstrip("0").rstrip(".") + \
                f" {c['unit']}"
        changes.append({**c, "label": label, "township": "全县" if c["township_code"] == COUNTY_CODE
                        else names.get(c["township_code"], c["township_code"]), "old": old, "new": new, "diff": diff})
    corrected = [{**i, "department": departments.get(i["department"], i["department"]),
                  "period": period_label_zh(i["period"]), "at": _bj(i["received_at"])}
                 for i in release.restatement["corrected_inputs"]]
    return {"version": release.version, "old_id": release.restatement["supersedes"], "changes": changes,
            "corrected": corrected}


def write_release_site(engine: Engine, release_id: str, reports_dir: Path, *, values: bytes | None = None) -> Path:
    """Render ``release_id``'s site into ``<reports>/releases/<id>/`` (swapped in whole); its index page."""
    with engine.connect() as conn:
        release = get_release(conn, release_id)
        rows = stored_values(conn, release.release_id)
    target = release_dir(reports_dir, release.release_id)
    site = render_release(engine, release, target)
    if values is None:
        values = canonical_values(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{release.release_id}.building-"))
    try:
        exported = target / "data"
        if exported.is_dir() and (target / "values.json").is_file() and (target / "values.json").read_bytes() == values:
            shutil.copytree(exported, built / "data")  # the frozen figures' exports: unchanged since drafted
        _write_site(site, {}, site["data"], built, export=not (built / "data").is_dir())
        (built / "values.json").write_bytes(values)
        info = {"release_id": release.release_id, "kind": release.kind, "period": release.period,
                "version": release.version, "state": release.state, "values_sha256": release.values_sha256,
                "frozen_at": release.frozen_at.isoformat(), "supersedes": release.supersedes,
                "superseded_by": release.superseded_by, "incomplete": release.incomplete,
                "provenance": release.provenance, "signoff": site["trail"]}
        (built / "release.json").write_text(json.dumps(info, ensure_ascii=False, indent=1, default=str),
                                            encoding="utf-8")
        if release.state == "approved":
            (built / "footnotes.json").write_text(json.dumps(
                site["footnotes"],
                ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        built.chmod(0o755)
        _swap(built, target)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return target / "index.html"


def _swap(built: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
    if target.exists():
        os.replace(target, old)
    os.replace(built, target)
    shutil.rmtree(old, ignore_errors=True)


def publish(engine: Engine, release_id: str, reports_dir: Path) -> Path:
    """Copy the approved ``release_id`` to ``<reports>/published/<kind>/`` (if it is the latest approved
    of its kind), re-render the version it restates (now 已更正), and write ``published/index.json``."""
    with engine.connect() as conn:
        release = get_release(conn, release_id)
        latest = latest_approved(conn)
    if release.state != "approved":
        raise ValueError(f"{release_id} is not approved: only approved releases are published")
    if release.supersedes:
        write_release_site(engine, release.supersedes, reports_dir)
    published = Path(reports_dir) / "published"
    published.mkdir(parents=True, exist_ok=True)
    for kind, row in latest.items():
        source = release_dir(reports_dir, row.release_id)
        if not source.is_dir():
            write_release_site(engine, row.release_id, reports_dir)
        built = Path(tempfile.mkdtemp(dir=published, prefix=f".{kind}.building-"))
        shutil.rmtree(built)
        shutil.copytree(source, built)
        _swap(built, published / kind)
    write_text_atomically(published / "index.json", json.dumps(
        {kind: {"release_id": row.release_id, "period": row.period, "version": row.version,
                "path": f"{kind}/index.html"} for kind, row in sorted(latest.items())}, ensure_ascii=False, indent=1),
        mode=0o644)
    return published / release.kind / "index.html"
