"""The report site's layout: Jinja2 templates (autoescaped; the stylesheet is tasks.report.style).

Layout only: every figure arrives formatted from the view modules; the only markup passed in is
SVG from ``tasks.report.charts`` (which escapes its own text). No scripts, no fonts or styles from
the network: the pages open from disk on a county office PC. Each page gets ``root`` (``""`` or
``"../"``) so its links work from any folder of the site.
"""

from __future__ import annotations

from typing import Any

import jinja2

from tasks.report import release_marks
from tasks.report.style import zh_punct

BASE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page_title }} · {{ title }}</title>
<link rel="stylesheet" href="{{ root }}assets/site.css">
<style>@page{size:A4;margin:16mm 12mm 14mm;\
@top-left{content:"{{ title }} · {{ page_title }}";font-size:9px;color:#555}\
@top-right{content:"报告日期 {{ report_date }}{% if period %} · 数据期 {{ period|zh }}{% endif %}";\
font-size:9px;color:#555}\
@bottom-center{content:"第 " counter(page) " 页，共 " counter(pages) " 页";font-size:9px;color:#555}}</style>
</head>
<body>
{% include "release_banner.html" %}
<header>
<h1>{{ title }}<span class="en">{{ title_en }}</span></h1>
<p class="subtitle">{{ subtitle }}{% if year %} · {{ year }}年{% endif %}</p>
<nav>
{% for href, label, en in nav %}<a href="{{ root }}{{ href }}"{% if href == here %} class="here"{% endif %}>\
{{ label }}<span class="en">{{ en }}</span></a>{% endfor %}
</nav>
<p class="meta">{% if period %}本页数据期：<span class="period">{{ period|zh }}</span>；{% endif %}报告日期：\
{{ report_date }}；生成时间：{{ generated }}</p>
</header>
<main>
{% block main %}{% endblock %}
</main>
<footer><p>数据来源:丹巴县各部门报表(对口帮扶数据汇总)。每项指标均注明口径、来源部门与覆盖情况;\
标 * 或橙色者数据不完整。本页离线可用,不连接网络。</p></footer>
</body>
</html>
"""

MACROS = """
{% macro shown_table(t, root) %}
<p class="downloads">下载 Download: <a href="{{ root }}data/{{ t.name }}.xlsx" download>Excel (.xlsx)</a>\
<a href="{{ root }}data/{{ t.name }}.csv" download>CSV (UTF-8)</a></p>
<div class="table-wrap{% if t.latest_first %} latest-first{% endif %}"><table id="table-{{ t.name }}">
<thead><tr>{% for h in t.head %}<th>{{ h|zh }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for c in row %}\
<td{% if c.cls %} class="{{ c.cls }}"{% endif %}{% if c.title %} title="{{ c.title }}"{% endif %}\
{% if c.data_kpi %} data-kpi="{{ c.data_kpi }}"{% endif %}>\
{% set text = c.text if c.verbatim else c.text|zh %}\
{% if c.href %}<a href="{{ root }}{{ c.href }}">{{ text }}</a>{% else %}{{ text }}{% endif %}</td>\
{% endfor %}</tr>
{% endfor %}
</tbody></table></div>
{% if t.note %}<p class="note">{{ t.note|zh }}</p>{% endif %}
{% endmacro %}
{% macro section_body(s, root) %}
{% if s.table %}{{ shown_table(s.table, root) }}{% else %}<p class="empty">{{ s.message|zh }}</p>{% endif %}
{% endmacro %}
{% macro matrix(m, root) %}
<h3 id="y{{ m.year }}">{{ m.year }}年</h3>
<div class="table-wrap latest-first"><table class="matrix">\
<thead><tr>{% for h in m.head %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in m.rows %}<tr>{% for c in row %}<td{% if c.cls %} class="{{ c.cls }}"{% endif %}\
{% if c.title %} title="{{ c.title }}"{% endif %}>{% if c.href %}<a href="{{ root }}{{ c.href }}">{{ c.text }}</a>\
{% else %}{{ c.text }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{% endmacro %}
{% macro status_legend() %}
<p class="legend">图例:<span class="status st-on_time">按时</span><span class="status st-late">逾期</span>\
<span class="status st-missing">缺报</span><span class="status st-quarantined">隔离待查</span>\
<span class="status st-rejected">拒收</span><span class="status st-pending">未到期</span></p>
{% endmacro %}
"""

INDEX = """{% extends "base.html" %}{% from "macros.html" import shown_table %}{% block main %}
<section id="headline">
<h2>主要指标{% if year %}({{ year }}年){% endif %}<span class="en">Headline indicators</span></h2>
{% if narrative %}<p class="narrative" id="narrative">{% for s in narrative %}{% if s.kpi %}\
<b data-kpi="{{ s.kpi }}" data-year="{{ s.year }}">{{ s.text }}</b>{% else %}{{ s.text }}{% endif %}{% endfor %}</p>\
{% endif %}
{% if cards %}
{% for group, cards in cards %}
<h3 class="group">{{ group }}</h3>
<div class="cards">
{% for c in cards %}
<article class="card{% if c.incomplete %} incomplete{% endif %}" data-kpi="{{ c.kpi }}" data-year="{{ c.year }}">
<h3>{{ c.label|zh }}</h3>
<p class="value">{% if release %}<a class="provenance" href="{{ root }}provenance.html#k-{{ c.kpi }}-{{ c.year }}">\
{{ c.value }}</a>{% else %}{{ c.value }}{% endif %}</p>
{% for d in c.details %}<p class="detail">{{ d|zh }}</p>{% endfor %}
<p class="coverage">{{ c.coverage }}{% if c.incomplete %} <span class="flag">数据不完整\
{% if c.publishable is false %}(未达发布条件){% endif %}</span>{% endif %}</p>
<p class="definition">口径:{{ c.definition|zh }};单位:{{ c.unit }};来源:{{ c.source }}</p>
{% if not c.article_figure %}<p class="article">报道中无此项数字，无可对照的公开数。</p>{% endif %}
</article>
{% endfor %}
</div>
{% endfor %}
{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
{% if registry %}<section id="registry-summary">
<h2>劳动力实名登记<span class="en">Labour registry: people, not rows</span></h2>
{% for line in registry %}<p>{{ line|zh }} <a href="{{ root }}registry.html">查看实名登记统计</a></p>{% endfor %}
</section>{% endif %}
<section id="trends">
<h2>历年趋势<span class="en">Trends since the earliest data</span></h2>
{% if basis_note %}<p class="basis-note">{{ basis_note|zh }}</p>{% endif %}
{% if charts %}<div class="charts">
{% for title, svg in charts %}<figure><figcaption>{{ title|zh }}</figcaption>{{ svg }}</figure>{% endfor %}
</div>{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
<section id="kpi-table">
<h2>各年指标一览<span class="en">All indicators by year</span></h2>
{% if kpi_table.rows %}{{ shown_table(kpi_table, root) }}{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
{% endblock %}"""

REGISTRY = """{% extends "base.html" %}{% from "macros.html" import shown_table %}{% block main %}
{% for v in views %}
<section id="registry-{{ v.department }}" class="registry" data-department="{{ v.department }}"\
{% if v.period %} data-period="{{ v.period }}"{% endif %}>
<h2>{{ v.title|zh }}<span class="en">Labour registry: KPIs from people, not rows</span></h2>
<p class="meta">报送部门:{{ v.source|zh }};一人一行的名册快照,{{ v.obligation|zh }};\
公民身份号码入库前即替换为密钥哈希。</p>
{% if v.period %}
<p class="meta">最新快照:<strong>{{ v.period_label }}</strong>(提交 {% if v.receipt_href %}\
<a href="{{ root }}{{ v.receipt_href }}">{{ v.submission_id }}</a>{% else %}{{ v.submission_id }}{% endif %}),\
{{ v.townships_covered }} 个乡镇;共 {{ v.snapshots }} 期快照。</p>
<div class="cards">
{% for c in v.cards %}<article class="card registry-card">
<h3>{{ c.label|zh }}</h3>
<p class="value">{% for p in c.parts %}<span data-measure="{{ p.measure }}">{{ p.text }}</span>\
{% if not loop.last %} <span class="vs">vs</span> {% endif %}{% endfor %}</p>
{% for d in c.details %}<p class="detail">{{ d|zh }}</p>{% endfor %}
<p class="definition">口径:{{ c.definition|zh }}</p>
</article>
{% endfor %}
</div>
<p class="note">人与人次:一人可参加多个工种的培训,所以参训人数(按身份证去重)少于培训人次;\
月报表的“技能培训人次”对应这里的培训人次。</p>
<div class="charts">{% for title, svg in v.charts %}<figure><figcaption>{{ title|zh }}</figcaption>{{ svg }}</figure>\
{% endfor %}</div>
<h3 id="certification">证书等级<span class="en">Certification by level</span></h3>
{{ shown_table(v.certification, root) }}
<h3 id="employment">分乡镇就业状态(贫困劳动力与全部)<span class="en">Employment status by township</span></h3>
{{ shown_table(v.townships, root) }}
<h3 id="reconciliation">与就业扶贫月报核对<span class="en">Reconciliation with the monthly labour return</span></h3>
<p id="reconciliation-result"{% if v.outside %} class="flag"{% endif %}>{{ v.reconciliation_text|zh }}</p>
{% if v.reconciliation %}{{ shown_table(v.reconciliation, root) }}{% endif %}
<h3 id="history">快照历史<span class="en">Snapshot history</span></h3>
{{ shown_table(v.history, root) }}
{% else %}<p class="empty">{{ v.empty|zh }}</p>{% endif %}
</section>
{% endfor %}
<p class="note">隐私:本页及其下载文件只含人数汇总(数据集市 mart_registry_*),不含姓名、公民身份号码或个人密钥;\
原始名册只保存在归档目录。</p>
{% endblock %}"""

TOWNSHIPS = """{% extends "base.html" %}{% from "macros.html" import shown_table %}{% block main %}
<section id="league">
<h2>乡镇指标排名{% if year %}({{ year }}年){% endif %}<span class="en">Township league table</span></h2>
{{ shown_table(league, root) }}
</section>
<section id="multiples">
<h2>分指标乡镇走势<span class="en">Small multiples (shared scale per indicator)</span></h2>
{% for m in multiples %}<h3>{{ m.title|zh }}</h3>
<div class="multiples">{% for name, href, svg in m.panels %}<a href="{{ root }}{{ href }}">{{ name }}{{ svg }}</a>\
{% endfor %}</div>
{% else %}<p class="empty">{{ no_data }}</p>{% endfor %}
</section>
<section id="pairing">
<h2>结对情况<span class="en">Chenghua pairings</span></h2>
{{ shown_table(pairing, root) }}
</section>
{% endblock %}"""

TOWNSHIP = """{% extends "base.html" %}{% from "macros.html" import shown_table %}{% block main %}
<section id="township">
<h2>{{ t.name }}<span class="en">{{ t.code }}</span></h2>
<dl class="facts"><dt>类型</dt><dd>{{ t.township_type }}</dd>
<dt>成华区结对单位</dt><dd><span class="{{ 'verified' if t.verified else 'assumed' }}" id="pairing">\
{{ t.helper_unit }}（{{ t.pairing }}）</span></dd></dl>
</section>
<section id="township-trends">
<h2>历年指标<span class="en">Indicators over time</span></h2>
{% for note in t.basis_notes %}<p class="basis-note">{{ note|zh }}</p>{% endfor %}
{% if t.table.rows %}{{ shown_table(t.table, root) }}{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
{% if t.charts %}<div class="charts">{% for title, svg in t.charts %}<figure><figcaption>{{ title|zh }}</figcaption>\
{{ svg }}</figure>{% endfor %}</div>{% endif %}
</section>
{% endblock %}"""

COMPLETENESS = """{% extends "base.html" %}{% from "macros.html" import matrix, section_body, status_legend %}\
{% block main %}
<section id="matrix">
<h2>报表完整性与及时性<span class="en">Completeness and timeliness</span></h2>
{% if matrices %}{{ status_legend() }}
{% for m in matrices %}{{ matrix(m, root) }}{% endfor %}
<p class="note">格中数字为已报乡镇数/应报乡镇数(仅在有乡镇未报时显示);点击部门或格子查看分乡镇情况。</p>
{% endif %}
{% if later %}<p class="note" id="later-years">{{ later }}</p>{% endif %}
<h3>明细<span class="en">All department-periods</span></h3>
{{ section_body(detail, root) }}
</section>
{% endblock %}"""

DEPARTMENT = """{% extends "base.html" %}{% from "macros.html" import matrix, section_body, status_legend %}\
{% block main %}
<section id="drilldown">
<h2>{{ department_name }}:分乡镇报送情况<span class="en">By township</span></h2>
{% if detail.matrices %}{{ status_legend() }}{% endif %}
{% for m in detail.matrices %}{{ matrix(m, root) }}{% endfor %}
{% if detail.note %}<p class="note">{{ detail.note }}</p>{% endif %}
{% if detail.matrices %}<h3>明细<span class="en">Township-periods</span></h3>{% endif %}
{{ section_body(detail.section, root) }}
</section>
{% endblock %}"""

QUALITY = """{% extends "base.html" %}{% from "macros.html" import section_body, matrix %}{% block main %}
<section id="attention" class="attention"><h2>需要处理的事项<span class="en">What needs attention</span></h2>
{% if attention.empty %}<p class="empty">目前没有待跟进事项、隔离或拒收的文件。</p>{% else %}
<p id="attention-summary">待跟进 <strong>{{ attention.open_count }}</strong> 项；隔离或拒收的文件 \
<strong>{{ attention.files|length }}</strong> 个；标记待查的数值 <strong>{{ attention.flagged }}</strong> 个。</p>
{% if attention.followups %}<h3>待跟进</h3><ul id="attention-followups">{% for line in attention.followups %}\
<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
{% if attention.files %}<h3>隔离待查与拒收的文件</h3><ul id="attention-files">{% for line, href in attention.files %}\
<li>{{ line }}{% if href %} <a href="{{ root }}{{ href }}">查看回执</a>{% endif %}</li>{% endfor %}</ul>{% endif %}
{% endif %}
</section>
<section id="heat"><h2>各部门各月未通过的检查<span class="en">Checks failed by department × month</span></h2>
{% if heat %}<p class="legend">颜色越深，未通过的检查（严重＋警告）越多；鼠标悬停可见明细。\
<span class="heat h0">0</span><span class="heat h1">1–2</span><span class="heat h2">3–9</span>\
<span class="heat h3">10+</span></p>
{% for m in heat %}{{ matrix(m, root) }}{% endfor %}{% else %}<p class="empty">{{ scorecard.message }}</p>{% endif %}
</section>
<section id="followups"><h2>待跟进事项明细<span class="en">Open follow-ups</span></h2>
{{ section_body(followups, root) }}</section>
<section id="details"><h2>完整记录<span class="en">Full tables</span></h2>
<details class="folded" id="scorecard"><summary>数据质量记分卡（各部门各月）</summary>
{{ section_body(scorecard, root) }}</details>
<details class="folded" id="submissions"><summary>报送记录与回执</summary>
{{ section_body(submissions, root) }}</details>
</section>
{% endblock %}"""

RECEIPT = """{% extends "base.html" %}{% block main %}
<section id="receipt">
<h2>回执 {{ r.submission_id }}<span class="en">Receipt</span></h2>
<p><strong>{{ r.summary }}</strong></p>
<dl class="facts">{% for k, v in r.facts %}<dt>{{ k|zh }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
<p class="downloads"><a href="{{ r.json_name }}">回执原文 (JSON)</a>{% if r.workbook %}\
<a href="{{ r.workbook }}">更正工作簿 (.xlsx)</a>{% endif %}</p>
<h3>问题与处理</h3>
{% if r.issues %}<table><thead><tr><th>级别</th><th>代码</th><th>位置</th><th>说明</th></tr></thead><tbody>
{% for sev, code, where, msg in r.issues %}<tr><td>{{ sev }}</td><td>{{ code }}</td><td>{{ where }}</td>\
<td>{{ msg }}</td>\
</tr>{% endfor %}</tbody></table>{% else %}<p class="empty">无</p>{% endif %}
</section>
{% endblock %}"""

DOWNLOADS = """{% extends "base.html" %}{% block main %}
<section id="downloads">
<h2>数据下载<span class="en">Downloads</span></h2>
<p class="note">表格提供 Excel (.xlsx) 与 CSV (UTF-8 带 BOM,Excel 可直接打开)。表头为中文并注明单位;数值保持为数值。\
以 = + - @ 或制表符、回车开头的文字单元格前加单引号 ' 以防公式注入。</p>
<table><thead><tr><th>表格</th><th>Excel</th><th>CSV</th></tr></thead><tbody>
{% for name, title in tables %}<tr><td>{{ title|zh }}</td>\
<td><a href="data/{{ name }}.xlsx" download>{{ name }}.xlsx</a></td>\
<td><a href="data/{{ name }}.csv" download>{{ name }}.csv</a></td></tr>{% endfor %}</tbody></table>
<h3>数据集市 (Parquet)</h3>
{% if marts %}<ul>{% for name in marts %}\
<li><a href="data/marts/{{ name }}.parquet" download>{{ name }}.parquet</a></li>\
{% endfor %}</ul>{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
{% endblock %}"""

TEMPLATES = {
    "base.html": BASE,
    "macros.html": MACROS,
    "index.html": INDEX,
    "townships.html": TOWNSHIPS,
    "township.html": TOWNSHIP,
    "completeness.html": COMPLETENESS,
    "department.html": DEPARTMENT,
    "quality.html": QUALITY,
    "registry.html": REGISTRY,
    "receipt.html": RECEIPT,
    "downloads.html": DOWNLOADS,
    "release_banner.html": release_marks.BANNER,
}
NAV = (
    ("index.html", "县级总览", "County"),
    ("townships.html", "乡镇", "Townships"),
    ("registry.html", "劳动力实名登记", "Labour registry"),
    ("completeness.html", "报送完整性", "Completeness"),
    ("quality.html", "数据质量", "Data quality"),
    ("downloads.html", "数据下载", "Downloads"),
)

_ENV = jinja2.Environment(
    # the templates' own Chinese text, typeset once; {{ … }} is left as it is (|zh where it is ours)
    loader=jinja2.DictLoader({name: zh_punct(source) for name, source in TEMPLATES.items()}),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


_ENV.globals.update(release=None, published=())  # no release banner unless a page's context brings one
_ENV.filters["zh"] = zh_punct


def render_page(template: str, **context: Any) -> str:
    """Render one of ``TEMPLATES`` with the site-wide ``nav``; context supplies the rest (``period``:
    what the page covers, ``report_date``: the report's date, both in the header and the print header)."""
    return _ENV.get_template(template).render(nav=NAV, **{"period": "", "report_date": "", **context})
