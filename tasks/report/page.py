"""The report site's layout: Jinja2 templates (autoescaped) and the stylesheet.

Layout only: every figure arrives formatted from the view modules; the only markup passed in is
SVG from ``tasks.report.charts`` (which escapes its own text). No scripts, no fonts or styles from
the network: the pages open from disk on a county office PC. Each page gets ``root`` (``""`` or
``"../"``) so its links work from any folder of the site.
"""

from __future__ import annotations

from typing import Any

import jinja2

from tasks.report import release_marks

CSS = """
body{font-family:"Microsoft YaHei","PingFang SC","Noto Sans CJK SC","Noto Sans SC",sans-serif;margin:0;
color:#222;background:#f6f7f8;line-height:1.5}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 16px}
header{padding-top:12px}h1{margin:0;font-size:26px}.subtitle{margin:0;color:#555;font-size:17px}
.en{color:#888;font-size:12px;font-weight:normal;margin-left:6px}
nav{margin:8px 0;display:flex;flex-wrap:wrap;gap:4px}nav a{padding:4px 10px;border-radius:4px;background:#e3edf1;
color:#1f4f63;text-decoration:none;font-size:14px}nav a.here{background:#1f6f8b;color:#fff}
.meta,footer,.definition,.coverage,.note{color:#666;font-size:13px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:14px 0;padding:6px 16px 14px}
h2{font-size:20px;border-bottom:2px solid #1f6f8b;padding-bottom:4px}h3{font-size:16px}
.narrative{font-size:16px;line-height:1.9;background:#f3f8fa;border-left:4px solid #1f6f8b;padding:8px 14px}
.narrative b{color:#1f4f63}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px}
.card{border:1px solid #cfd8dc;border-radius:6px;padding:8px 12px}
.card h3{margin:0;font-size:15px}.card .value{font-size:24px;font-weight:bold;margin:4px 0;color:#1f6f8b}
.card p{margin:2px 0}.detail{font-size:14px}
.incomplete{border-color:#c77700;background:#fff8ec}.flag{color:#b35c00;font-weight:bold}
td.incomplete{color:#b35c00}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
figure{margin:0}figcaption{font-weight:bold;font-size:14px}svg.chart{width:100%;height:auto}
svg text.small{font-size:10px}
.multiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:6px;margin-bottom:12px}
.multiples a{color:#222;text-decoration:none;font-size:13px;border:1px solid #eee;padding:2px 4px}
svg.spark{width:100%;height:auto;display:block}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border:1px solid #ddd;padding:4px 8px}td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#eef3f5;text-align:left}.empty{color:#888}td a{white-space:nowrap}
.downloads{font-size:13px;margin:4px 0}.downloads a{margin-right:8px}
.status{text-align:center;white-space:nowrap}td.num,td.nowrap{white-space:nowrap}
table.matrix th:first-child{width:14em}table.matrix td,table.matrix th{padding:3px 5px}
.st-on_time{background:#dff0d8;color:#2b5e2b}.st-late{background:#fcf0d2;color:#8a5a00}
.st-missing{background:#f8d7da;color:#8b1e2a;font-weight:bold}.st-quarantined{background:#e7dcf3;color:#5b3a8a}
.st-rejected{background:#8b1e2a;color:#fff}.st-pending{background:#f0f0f0;color:#777}.st-none{background:#fafafa;color:#999}
.st-rejected a{color:#fff}.status a{color:inherit}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:3px;font-size:13px}
td.verified,span.verified{border-left:3px solid #2b7a2b}td.assumed,span.assumed{border-left:3px dashed #c77700}
.registry-card .vs{color:#888;font-size:15px;font-weight:normal}
dl.facts{display:grid;grid-template-columns:8em 1fr;gap:2px 12px}dl.facts dt{color:#555}dl.facts dd{margin:0}
""" + release_marks.CSS

BASE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page_title }} · {{ title }}</title>
<link rel="stylesheet" href="{{ root }}assets/site.css">
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
<p class="meta">生成时间:{{ generated }}</p>
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
<div class="table-wrap"><table id="table-{{ t.name }}">
<thead><tr>{% for h in t.head %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for c in row %}\
<td{% if c.cls %} class="{{ c.cls }}"{% endif %}{% if c.title %} title="{{ c.title }}"{% endif %}\
{% if c.data_kpi %} data-kpi="{{ c.data_kpi }}"{% endif %}>\
{% if c.href %}<a href="{{ root }}{{ c.href }}">{{ c.text }}</a>{% else %}{{ c.text }}{% endif %}</td>\
{% endfor %}</tr>
{% endfor %}
</tbody></table></div>
{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}
{% endmacro %}
{% macro section_body(s, root) %}
{% if s.table %}{{ shown_table(s.table, root) }}{% else %}<p class="empty">{{ s.message }}</p>{% endif %}
{% endmacro %}
{% macro matrix(m, root) %}
<h3 id="y{{ m.year }}">{{ m.year }}年</h3>
<div class="table-wrap"><table class="matrix"><thead><tr>{% for h in m.head %}<th>{{ h }}</th>{% endfor %}</tr></thead>
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
<div class="cards">
{% for c in cards %}
<article class="card{% if c.incomplete %} incomplete{% endif %}" data-kpi="{{ c.kpi }}" data-year="{{ c.year }}">
<h3>{{ c.label }}</h3>
<p class="value">{% if release %}<a class="provenance" href="{{ root }}provenance.html#k-{{ c.kpi }}-{{ c.year }}">\
{{ c.value }}</a>{% else %}{{ c.value }}{% endif %}</p>
{% for d in c.details %}<p class="detail">{{ d }}</p>{% endfor %}
<p class="coverage">{{ c.coverage }}{% if c.incomplete %} <span class="flag">数据不完整\
{% if c.publishable is false %}(未达发布条件){% endif %}</span>{% endif %}</p>
<p class="definition">口径:{{ c.definition }};单位:{{ c.unit }};来源:{{ c.source }}</p>
</article>
{% endfor %}
</div>
{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
{% if registry %}<section id="registry-summary">
<h2>劳动力实名登记<span class="en">Labour registry: people, not rows</span></h2>
{% for line in registry %}<p>{{ line }} <a href="{{ root }}registry.html">查看实名登记统计</a></p>{% endfor %}
</section>{% endif %}
<section id="trends">
<h2>历年趋势<span class="en">Trends since the earliest data</span></h2>
{% if charts %}<div class="charts">
{% for title, svg in charts %}<figure><figcaption>{{ title }}</figcaption>{{ svg }}</figure>{% endfor %}
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
<h2>{{ v.title }}<span class="en">Labour registry: KPIs from people, not rows</span></h2>
<p class="meta">报送部门:{{ v.source }};一人一行的名册快照,{{ v.obligation }};公民身份号码入库前即替换为密钥哈希。</p>
{% if v.period %}
<p class="meta">最新快照:<strong>{{ v.period_label }}</strong>(提交 {% if v.receipt_href %}\
<a href="{{ root }}{{ v.receipt_href }}">{{ v.submission_id }}</a>{% else %}{{ v.submission_id }}{% endif %}),\
{{ v.townships_covered }} 个乡镇;共 {{ v.snapshots }} 期快照。</p>
<div class="cards">
{% for c in v.cards %}<article class="card registry-card">
<h3>{{ c.label }}</h3>
<p class="value">{% for p in c.parts %}<span data-measure="{{ p.measure }}">{{ p.text }}</span>\
{% if not loop.last %} <span class="vs">vs</span> {% endif %}{% endfor %}</p>
{% for d in c.details %}<p class="detail">{{ d }}</p>{% endfor %}
<p class="definition">口径:{{ c.definition }}</p>
</article>
{% endfor %}
</div>
<p class="note">人与人次:一人可参加多个工种的培训,所以参训人数(按身份证去重)少于培训人次;\
月报表的“技能培训人次”对应这里的培训人次。</p>
<div class="charts">{% for title, svg in v.charts %}<figure><figcaption>{{ title }}</figcaption>{{ svg }}</figure>\
{% endfor %}</div>
<h3 id="certification">证书等级<span class="en">Certification by level</span></h3>
{{ shown_table(v.certification, root) }}
<h3 id="employment">分乡镇就业状态(贫困劳动力与全部)<span class="en">Employment status by township</span></h3>
{{ shown_table(v.townships, root) }}
<h3 id="reconciliation">与就业扶贫月报核对<span class="en">Reconciliation with the monthly labour return</span></h3>
<p id="reconciliation-result"{% if v.outside %} class="flag"{% endif %}>{{ v.reconciliation_text }}</p>
{% if v.reconciliation %}{{ shown_table(v.reconciliation, root) }}{% endif %}
<h3 id="history">快照历史<span class="en">Snapshot history</span></h3>
{{ shown_table(v.history, root) }}
{% else %}<p class="empty">{{ v.empty }}</p>{% endif %}
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
{% for m in multiples %}<h3>{{ m.title }}</h3>
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
{{ t.helper_unit }}({{ t.pairing }})</span></dd></dl>
</section>
<section id="township-trends">
<h2>历年指标<span class="en">Indicators over time</span></h2>
{% if t.table.rows %}{{ shown_table(t.table, root) }}{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
{% if t.charts %}<div class="charts">{% for title, svg in t.charts %}<figure><figcaption>{{ title }}</figcaption>\
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

QUALITY = """{% extends "base.html" %}{% from "macros.html" import section_body %}{% block main %}
<section id="scorecard"><h2>数据质量记分卡<span class="en">DQ scorecard</span></h2>{{ section_body(scorecard, root) }}
</section>
<section id="followups"><h2>待跟进事项<span class="en">Open follow-ups</span></h2>{{ section_body(followups, root) }}
</section>
<section id="submissions"><h2>报送记录与回执<span class="en">Submissions and receipts</span></h2>\
{{ section_body(submissions, root) }}</section>
{% endblock %}"""

RECEIPT = """{% extends "base.html" %}{% block main %}
<section id="receipt">
<h2>回执 {{ r.submission_id }}<span class="en">Receipt</span></h2>
<p><strong>{{ r.summary }}</strong></p>
<dl class="facts">{% for k, v in r.facts %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
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
{% for name, title in tables %}<tr><td>{{ title }}</td>\
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
    loader=jinja2.DictLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(template: str, **context: Any) -> str:
    """Render one of ``TEMPLATES`` with the site-wide ``nav``; context supplies the rest."""
    return _ENV.get_template(template).render(nav=NAV, **context)
