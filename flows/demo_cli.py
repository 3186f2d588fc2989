"""``duikou demo``: the demo county's returns generated into the landing area, the nightly run over
them, then the headline KPIs, the registries and the completeness table printed, and the 2016 annual
release signed off by the demo's officials and published (its id and path printed).

The demo keeps its own Prefect home and, without ``DUIKOU_PERSON_KEY``, its own person key under
the data directory, and judges completeness on the demo's clock. Exit codes as in ``flows/cli.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from duikou_settings import get_settings, reset_settings_cache
from flows.ingest_cli import own_prefect_server, print_nightly, reach_warehouse
from flows.report_cli import headline

EXIT_OK = 0
EXIT_USAGE = 2
#: the demo's last month by default: the sequel to 2020-12, across the 2019 township reform
DEMO_THROUGH = "2020-12"


def _demo_prefect_home() -> None:
    """Without a Prefect server the demo's runs go to Prefect's temporary local server, whose
    database lives in ``PREFECT_HOME`` (``~/.prefect``); the demo keeps its own under the data
    directory, so a database another Prefect version migrated there cannot stop it (seen: "Can't
    locate revision" after a newer Prefect had used ``~/.prefect``). A configured server
    (``PREFECT_API_URL``) or an explicit ``PREFECT_HOME`` is left alone."""
    if "prefect" in sys.modules or os.environ.get("PREFECT_API_URL") or os.environ.get("PREFECT_HOME"):
        return
    home = get_settings().resolved_data_dir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)


DEMO_KEY_FILE = Path("secrets") / "demo-person-key"


def _demo_person_key() -> None:
    """Without DUIKOU_PERSON_KEY the demo uses its own random key, made once into
    ``<data>/secrets/demo-person-key`` (0600) and kept, so later demo runs key people alike. Only
    ``duikou demo`` does this: ``ingest`` / ``nightly`` keep refusing a registry without the key."""
    settings = get_settings()
    if settings.person_key is not None and settings.person_key.get_secret_value():
        return
    path = settings.resolved_data_dir / DEMO_KEY_FILE
    if path.is_file():
        key = path.read_text(encoding="ascii").strip()
        print(f"演示密钥 demo person key: DUIKOU_PERSON_KEY is not set; using the demo's own key {path}")
    else:
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key + "\n")
        print(f"演示密钥 demo person key: DUIKOU_PERSON_KEY is not set; generated a random key for the demo only "
              f"into {path} (0600)")
    print("  production sets DUIKOU_PERSON_KEY from its secret store; duikou ingest / nightly refuse registries "
          "without it")
    os.environ["DUIKOU_PERSON_KEY"] = key
    reset_settings_cache()


def _registry_section(data: Any) -> None:
    """The person-level registries' lines, from ``data`` (tasks.report.data.ReportData)."""
    from tasks.report.registry import registry_lines, registry_views

    for view in registry_views(data):
        print("\n".join(registry_lines(view)))


def cmd_demo(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["DUIKOU_DATA_DIR"] = args.data_dir
        reset_settings_cache()
    _demo_prefect_home()  # before anything imports Prefect
    from flows.prefect_home import check_prefect_database

    check_prefect_database()  # the home chosen above, or the one set by the caller
    own_prefect_server()
    from flows.runners import nightly_flow
    from tasks.demo.data import demo_as_of, generate_demo

    through = getattr(args, "through", None) or DEMO_THROUGH
    if get_settings().as_of is None:  # completeness is judged on the demo's clock, not today
        os.environ["DUIKOU_AS_OF"] = demo_as_of(through).isoformat()
        reset_settings_cache()
    _demo_person_key()  # the registry snapshots are keyed: a demo key when none is set
    settings = get_settings()
    landing = settings.landing_dir
    has_files = landing.exists() and any(p.is_file() for p in landing.rglob("*"))
    if args.fresh or not has_files:
        try:
            files = generate_demo(landing, seed=args.seed, through=through)
        except ValueError as exc:
            print(f"用法错误 usage: --through: {exc}", file=sys.stderr)
            return EXIT_USAGE
        flawed = [f for f in files if f.kind == "flawed"]
        print(f"生成演示数据 generated {len(files)} demo submissions ({len(flawed)} deliberately flawed) "
              f"in {landing}")
    reach_warehouse()  # unreachable: one line and exit 3, before the flow run starts
    summary = nightly_flow(get_settings())(run_label="demo")
    print_nightly(summary)
    print()
    print(f"数据仓库 warehouse: {settings.resolved_warehouse_url}")
    print(f"报告 report:        {summary.report_path}")
    if summary.report_path:
        print(f"仪表板 dashboard:   {Path(summary.report_path).parent.parent / 'latest' / 'index.html'}")
    print(f"回执 receipts:      {settings.receipts_dir}")
    print(f"归档 archive:       {settings.archive_dir}   待核/退回 quarantine: {settings.quarantine_dir}")
    print()
    from flows.followups_cli import completeness_lines
    from flows.warehouse_access import open_warehouse
    from tasks.report.build_site import load_report_data

    engine = open_warehouse(settings)
    data = load_report_data(engine)  # once, for the headline and the registries
    print("主要指标 headline KPIs (2016):")
    headline(2016, data)
    print()
    _registry_section(data)
    print()
    print("\n".join(completeness_lines(engine)))
    if through >= "2017-12":  # the registry's quarters after 2017-09 are owed, but the demo lands two snapshots
        print("  (登记表只演示2017年6月、9月两期快照，此后各季度显示缺报 "
              "the demo lands the registry's 2017 snapshots only)")
    if through >= "2020-01":
        print()
        print("\n".join(reform_lines(engine)))
    print()
    _publish_demo_release(engine, settings.resolved_data_dir / "reports")
    print()
    _portal_section(engine, settings)
    return EXIT_OK


def reform_lines(engine: Any) -> list[str]:
    """The 2019 township reform in the demo's figures: the county total the same on both views, each
    unit the reform made on current boundaries before 2020 and as reported from 2020, and the change
    of 口径 the poverty incidence crosses (read from the marts)."""
    from sqlalchemy import select

    from warehouse.schema import mart_county_kpi_yearly as county
    from warehouse.schema import mart_township_kpi_yearly as township
    from warehouse.schema import ref_township

    kpi = "tourism_revenue_yuan"
    with engine.connect() as conn:
        units = conn.execute(select(ref_township.c.township_code, ref_township.c.name_zh)
                             .where(ref_township.c.valid_from > date(2019, 12, 31))
                             .order_by(ref_township.c.township_code)).all()
        rows = conn.execute(select(township.c.basis, township.c.township_code, township.c.year, township.c.value,
                                   township.c.assumed)
                            .where(township.c.kpi == kpi, township.c.year.in_((2019, 2020)))).all()
        incidence = conn.execute(select(county.c.year, county.c.value, county.c.definition_version)
                                 .where(county.c.kpi == "poverty_incidence_pct", county.c.year.in_((2019, 2020)))
                                 .order_by(county.c.year)).all()
    value = {(r.basis, r.township_code, r.year): (r.value, r.assumed) for r in rows}
    lines = ["区划调整 the 2019 township reform (15 乡镇 → 2020年起 12 个; mart_township_kpi_yearly):",
             "  旅游总收入 万元: 2019年按现行区划折算(current boundaries) → 2020年按当时区划(as reported)"]
    for code, name in units:
        before, assumed = value.get(("current_boundaries", code, 2019), (None, False))
        after, _ = value.get(("as_reported", code, 2020), (None, False))
        shown = [f"{v / 1e4:10.2f}" if v is not None else f"{'—':>10}" for v in (before, after)]
        lines.append(f"  {name}{'　' * (5 - len(name))} {shown[0]} → {shown[1]}"
                     f"{'  (对照表权重为推定 assumed)' if assumed else ''}")
    if len(incidence) == 2:
        (y0, v0, d0), (y1, v1, d1) = incidence
        lines.append(f"  贫困发生率 {y0}年 {v0:.2f}%（口径 {d0}）→ {y1}年 {v1:.2f}%（口径 {d1}）："
                     f"{'口径不同，不计算变化' if d0 != d1 else '口径相同'}")
    lines.append("  report: townships/<code>.html (两种口径的图，虚线为区划调整与口径变更)")
    return lines


DEMO_OFFICIALS = (("demo.zhang", "张编制（演示）", "preparer"), ("demo.li", "李审核（演示）", "reviewer"),
                  ("demo.wang", "王审批（演示）", "approver"))
DEMO_RELEASE = ("annual", "2016")


def _demo_account(engine: Any, login: str, name: str, role: str, department: str | None = None) -> Any:
    from tasks.accounts import create_account, find_account

    return find_account(engine, login) or create_account(engine, login, name, {role}, department=department)


def _demo_clerk(engine: Any, department: str) -> Any:
    """The demo's clerk of ``department`` (login ``demo.<department>``), named after the department's
    office — the one account the portal line and the release's 说明 both use."""
    from sqlalchemy import select

    from warehouse.schema import ref_department

    with engine.connect() as conn:
        office = conn.execute(select(ref_department.c.name_zh)
                              .where(ref_department.c.department == department)).scalar_one_or_none()
    return _demo_account(engine, f"demo.{department}", f"{office or department}填报员（演示）", "clerk", department)


def _publish_demo_release(engine: Any, reports_dir: Path) -> None:
    """The 2016 annual release through the whole chain with the demo's officials (accounts ``demo.*``):
    drafted, each flagged 2016 value explained by its department's demo clerk, reviewed, approved,
    published. A demo run that finds it published already says where it is."""
    from tasks.releases.signoff import approve_release, draft_release, review_release
    from warehouse.followups import explain
    from warehouse.releases import get_release, release_warnings, versions_of

    kind, period = DEMO_RELEASE
    zhang, li, wang = (_demo_account(engine, *o) for o in DEMO_OFFICIALS)
    with engine.connect() as conn:
        versions = versions_of(conn, kind, period)
    if versions and versions[-1].state == "approved":
        release_id = versions[-1].release_id
        print(f"已发布 release {release_id} (published before; duikou release show {release_id})")
    else:
        release_id = versions[-1].release_id if versions and versions[-1].state == "in_review" else \
            draft_release(engine, zhang, kind, period, reports_dir=reports_dir, note="演示：编制2016年年报").release_id
        with engine.connect() as conn:
            release = get_release(conn, release_id)
            unexplained = [w for w in release_warnings(conn, release) if not w.explained]
        for w in unexplained:  # the demo's clerks answer their flagged values (real clerks write their own 说明)
            clerk = _demo_clerk(engine, w.department)
            explain(engine, w.followup_id, clerk.login, w.department, "演示说明：乡镇复核后确认该数值属实")
        if release.state == "draft":
            review_release(engine, li, release_id, "演示：统计审核通过", reports_dir=reports_dir)
        approve_release(engine, wang, release_id, "演示：同意发布", reports_dir=reports_dir)
        print(f"发布 release {release_id}: 编制 {zhang.login} → 统计审核 {li.login} → 分管领导审批 {wang.login}"
              f"（{len(unexplained)} 个被标记数值已由部门说明）")
        from tasks.report.build_site import build_report

        build_report(engine, reports_dir.parent)  # the dashboard's 已发布 banner now points at it
    print(f"发布版 release id:  {release_id}")
    print(f"发布报告 published: {reports_dir / 'published' / kind / 'index.html'}")
    print(f"版本目录 release:   {reports_dir / 'releases' / release_id / 'index.html'}")


def _portal_section(engine: Any, settings: Any) -> None:
    """How to open the department portal as the demo's education clerk: a one-time sign-in link."""
    from flows.accounts_cli import sign_in_url
    from tasks.accounts import issue_sign_in_link

    login = _demo_clerk(engine, "education").login  # the same clerk the release's explanations come from
    secret = issue_sign_in_link(engine, login, 24 * 3600)
    print(f"部门报送平台 department portal (县教育局演示填报员 {login}):")
    # the portal's clock: early in the demo's month, while last month's return is still open (sendable)
    clock = (settings.as_of or date.today()).replace(day=5)
    print(f"  1. 启动 start:  DUIKOU_DATA_DIR={settings.resolved_data_dir} DUIKOU_AS_OF={clock.isoformat()} "
          "duikou intake-server")
    print(f"  2. 打开 open (一次性登录链接，24小时内有效 one-time link, valid 24 h):  {sign_in_url(secret)}")
    print(f"     another link: duikou accounts link {login}")
