"""The KPI report's page layout: one Jinja2 template with inline CSS, autoescaped.

Layout only: every figure arrives already formatted from ``tasks.report``; the only markup passed
in is the SVG from ``tasks.report_charts`` (which escapes its own text). No scripts, no fonts or
styles from the network: the page must open offline on a county office PC.
"""

from __future__ import annotations

import jinja2
from markupsafe import Markup

CSS = """
body{font-family:"Microsoft YaHei","PingFang SC","Noto Sans CJK SC",sans-serif;margin:0;color:#222;
background:#f6f7f8;line-height:1.5}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 16px}
header{padding-top:16px}h1{margin:0;font-size:26px}.subtitle{margin:0;color:#555;font-size:18px}
.meta,footer,.definition,.coverage{color:#666;font-size:13px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:16px 0;padding:8px 16px 16px}
h2{font-size:20px;border-bottom:2px solid #1f6f8b;padding-bottom:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px}
.card{border:1px solid #cfd8dc;border-radius:6px;padding:8px 12px}
.card h3{margin:0;font-size:15px}.card .value{font-size:24px;font-weight:bold;margin:4px 0;color:#1f6f8b}
.card p{margin:2px 0}.detail{font-size:14px}
.incomplete{border-color:#c77700;background:#fff8ec}.flag{color:#b35c00}
td.incomplete{color:#b35c00}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
figure{margin:0}figcaption{font-weight:bold;font-size:14px}svg.chart{width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border:1px solid #ddd;padding:4px 8px}td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#eef3f5;text-align:left}.empty{color:#888}
"""

PAGE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ subtitle }}</title>
<style>{{ css }}</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p class="subtitle">{{ subtitle }}{% if year %} · {{ year }}年{% endif %}</p>
<p class="meta">生成时间:{{ generated }}</p>
</header>
<main>
<section id="headline">
<h2>主要指标{% if year %}({{ year }}年){% endif %}</h2>
{% if cards %}
<div class="cards">
{% for c in cards %}
<article class="card{% if c.incomplete %} incomplete{% endif %}">
<h3>{{ c.label }}</h3>
<p class="value">{{ c.value }}</p>
{% for d in c.details %}<p class="detail">{{ d }}</p>{% endfor %}
<p class="coverage">{{ c.coverage }}\
{% if c.incomplete %} <strong class="flag">数据不完整</strong>{% endif %}</p>
<p class="definition">口径:{{ c.definition }}</p>
</article>
{% endfor %}
</div>
{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
<section id="trends">
<h2>历年趋势</h2>
<div class="charts">
{% for ch in charts %}<figure><figcaption>{{ ch.title }}</figcaption>{{ ch.svg }}</figure>{% endfor %}
</div>
</section>
<section id="kpi-table">
<h2>各年指标一览</h2>
{% if kpi_rows %}
<table>
<thead><tr><th>指标</th>{% for y in years %}<th>{{ y }}</th>{% endfor %}</tr></thead>
<tbody>
{% for label, cells in kpi_rows %}
<tr><th>{{ label }}</th>{% for cell in cells %}<td class="num{% if cell.incomplete %} incomplete{% endif %}" \
title="{{ cell.coverage }}">{{ cell.text }}{% if cell.incomplete %}*{% endif %}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
<p class="meta">* 数据不完整(覆盖不足);鼠标悬停可见覆盖情况。</p>
{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
<section id="townships">
<h2>分乡镇情况{% if year %}({{ year }}年){% endif %}</h2>
{% if township_rows %}
<table>
<thead><tr><th>乡镇</th><th>农牧民人均纯收入(元)</th><th>贫困发生率(%)</th><th>旅游总收入(万元)</th></tr></thead>
<tbody>
{% for name, income, incidence, revenue in township_rows %}
<tr><th>{{ name }}</th><td class="num">{{ income }}</td><td class="num">{{ incidence }}</td>\
<td class="num">{{ revenue }}</td></tr>
{% endfor %}
</tbody>
</table>
<p class="meta">贫困发生率 = 年末建档立卡贫困人口 ÷ 农业户籍人口 × 100;旅游总收入为当年各月之和。</p>
{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
<section id="submissions">
<h2>报送情况</h2>
{% if status_counts %}
<table>
<thead><tr><th>部门</th>{% for s in statuses %}<th>{{ s }}</th>{% endfor %}<th>合计</th></tr></thead>
<tbody>
{% for name, counts, total in status_counts %}
<tr><th>{{ name }}</th>{% for n in counts %}<td class="num">{{ n }}</td>{% endfor %}\
<td class="num">{{ total }}</td></tr>
{% endfor %}
</tbody>
</table>
<h3>未入库的报送(拒收 / 隔离)</h3>
{% if problems %}
<table>
<thead><tr><th>部门</th><th>期别</th><th>文件名</th><th>状态</th><th>严重问题数</th><th>收到日期</th>\
<th>回执</th></tr></thead>
<tbody>
{% for p in problems %}
<tr><td>{{ p.department }}</td><td>{{ p.period }}</td><td>{{ p.name }}</td><td>{{ p.status }}</td>\
<td class="num">{{ p.critical }}</td><td>{{ p.received }}</td>\
<td>{% if p.href %}<a href="{{ p.href }}">查看回执</a>{% else %}—{% endif %}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="empty">无</p>{% endif %}
{% else %}<p class="empty">{{ no_data }}</p>{% endif %}
</section>
</main>
<footer><p>数据来源:丹巴县各部门报表(对口帮扶数据汇总)。每项指标均注明口径与覆盖情况。</p></footer>
</body>
</html>
"""

_ENV = jinja2.Environment(
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)
# the CSS is ours and constant; marking it safe keeps its quotes intact inside <style>
PAGE_TEMPLATE = _ENV.from_string(PAGE, globals={"css": Markup(CSS)})
