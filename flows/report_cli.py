"""``duikou report``, ``duikou history``, ``duikou docs`` and ``duikou dq docs``: what the warehouse
says, as the HTML report and its headline KPIs, one return's versions, the datasets reference and
one submission's GX Data Docs. Exit codes as in ``flows/cli.py``: 0 done, 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from duikou_settings import get_settings

EXIT_OK, EXIT_USAGE = 0, 2


def headline(year: int | None, data: Any = None) -> None:
    """The headline KPIs of ``year``, from ``data`` (tasks.report.data.ReportData) or loaded here."""
    from flows.warehouse_access import open_warehouse
    from tasks.report.build_site import headline_rows, load_report_data

    if data is None:
        data = load_report_data(open_warehouse(get_settings()))
    rows = headline_rows(data, year)
    if not rows:
        print("暂无数据 (no KPI data yet)")
        return
    width = max(len(label) for label, _, _ in rows)
    for label, value, coverage in rows:
        print(f"  {label}{'　' * (width - len(label))}  {value:<22} {coverage}")


def cmd_report(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from tasks.report.build_site import build_report
    from warehouse.marts import refresh_marts

    settings = get_settings()
    engine = open_warehouse(settings)
    refresh_marts(engine)
    out = Path(args.out) if args.out else None
    path = build_report(engine, settings.resolved_data_dir, year=args.year, out=out)
    print(f"报告 report: {path}")
    print(f"最新 latest: {path.parent.parent / 'latest' / path.name}")
    headline(args.year)
    return EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    from warehouse.dataset_docs import render_datasets_docs  # forms and person-level registries

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_datasets_docs(), encoding="utf-8")
    print(f"wrote {out}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from expectations.declaration import load_declarations
    from flows.warehouse_access import open_warehouse
    from warehouse.load import parse_period
    from warehouse.restatements import history_lines, partition_history

    known = sorted(load_declarations())
    if args.department not in known:
        print(f"duikou history: unknown department {args.department!r} (one of {', '.join(known)})",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        parse_period(args.period)
    except ValueError as exc:
        print(f"duikou history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    history = partition_history(open_warehouse(get_settings()), args.department, args.period)
    if args.json:
        print(json.dumps(history.to_dict(), ensure_ascii=False, default=str))
    else:
        print("\n".join(history_lines(history)))
    return EXIT_OK


def cmd_dq_docs(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from tasks.registry.dq_docs import build_registry_docs
    from tasks.submission.dq_docs import build_form_docs
    from tasks.submission.journey import is_registry
    from tasks.validation.data_docs import DqDocsError, docs_dir, ledger_row

    settings = get_settings()
    try:
        engine = open_warehouse(settings)
        row = ledger_row(engine, args.submission_id)
        build = build_registry_docs if is_registry(row.department) else build_form_docs  # a registry: its own page
        out = docs_dir(settings, args.submission_id, Path(args.out) if args.out else None)
        docs = build(engine, settings, row, out)
    except DqDocsError as exc:
        print(f"duikou dq docs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(docs.index_html)
    return EXIT_OK
