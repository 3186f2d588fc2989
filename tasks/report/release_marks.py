"""What a page says about releases (issue 20): the 草稿 / 已发布 / 已更正 banner of a release's own
pages, the nightly dashboard's 已发布 banner, and the links from a release's figures to their provenance.

Kept apart from the page layout (``tasks.report.page`` includes ``release_banner.html`` once, right
under ``<body>``): the release's state and links arrive here as data, built by ``tasks.releases``
(a release's site) or read by ``tasks.report.data`` (the latest approved release per kind).
Links between releases go through the reports folder: a release's pages sit two folders below it
(``releases/<id>/``, ``published/<kind>/``), the nightly site's one (``<day>/``, ``latest/``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tasks.report.tables import ShownTable


@dataclass(frozen=True)
class ReleaseMarks:
    """The banner of every page of one release's site."""

    release_id: str
    title_zh: str  # 丹巴县对口帮扶年度统计公报 2016年 第1版
    state: str  # draft | in_review | approved
    state_zh: str  # 草稿 | 审核中（草稿） | 已发布
    frozen_at_zh: str
    incomplete: bool
    missing_zh: str  # the returns missing when it was drafted (incomplete only)
    corrected_by: str | None = None  # the approved version that restated this one
    corrected_by_version: int | None = None
    restates: str | None = None  # the version this one restates (its 更正说明)

    @property
    def draft(self) -> bool:
        return self.state != "approved"


@dataclass(frozen=True)
class PublishedLink:
    """The latest approved release of one kind, for the nightly dashboard's banner."""

    kind: str
    title_zh: str
    release_id: str
    version: int
    approved_at_zh: str


BANNER = """{% if release %}
<div class="release-banner {{ 'draft' if release.draft else 'published' }}" id="release-banner" \
data-release="{{ release.release_id }}" data-state="{{ release.state }}">
<strong class="release-state">{{ release.state_zh }}</strong> {{ release.title_zh }}（{{ release.release_id }}，\
数据截至 {{ release.frozen_at_zh }}）{% if release.draft %} · 未经审批，不得引用{% endif %}
{% if release.incomplete %}<br><strong class="release-incomplete">数据不完整</strong>：编制时缺报 \
{{ release.missing_zh }}{% endif %}
{% if release.corrected_by %}<br><strong class="release-corrected">已更正，见 \
<a href="{{ root }}../../releases/{{ release.corrected_by }}/index.html">v{{ release.corrected_by_version }}</a>\
</strong>{% endif %}
{% if release.restates %}<br>本版为更正版：<a href="{{ root }}corrections.html">更正说明</a>{% endif %}
<br><a href="{{ root }}provenance.html">数据来源与签批记录</a>
</div>
{% elif published %}
<div class="release-banner published" id="published-banner">
{% for p in published %}<p data-kind="{{ p.kind }}" data-release="{{ p.release_id }}"><strong>已发布</strong> \
<a href="{{ root }}../published/{{ p.kind }}/index.html">{{ p.title_zh }}（v{{ p.version }}）</a>，\
审批于 {{ p.approved_at_zh }}</p>{% endfor %}
</div>
{% endif %}"""

CSS = """
.release-banner{max-width:1148px;margin:8px auto 0;padding:8px 16px;border-radius:6px;font-size:14px}
.release-banner.draft{background:#fdecea;border:2px dashed #b3261e;color:#7a1a14}
.release-banner.published{background:#e8f4ea;border:1px solid #2b7a2b}.release-banner p{margin:2px 0}
.release-state{font-size:17px}a.provenance{color:inherit;text-decoration:none;border-bottom:1px dotted #1f6f8b}
"""


def link_figures(table: ShownTable, kpi_order: list[str], years: list[int], first_figure_column: int = 2) -> ShownTable:
    """The county KPI table with each figure linked to its provenance entry (``provenance.html#k-<kpi>-<year>``)."""
    rows = []
    for kpi, row in zip(kpi_order, table.rows, strict=True):
        cells = list(row)
        for j, year in enumerate(years):
            cell = cells[first_figure_column + j]
            if cell.text not in ("", "—"):
                cells[first_figure_column + j] = replace(cell, href=f"provenance.html#k-{kpi}-{year}")
        rows.append(tuple(cells))
    return replace(table, rows=tuple(rows))
