"""The report site's stylesheet (screen, phone, print) and its Chinese typesetting (``zh_punct``).

Print: A4 (each page's own ``@page`` in ``tasks.report.page`` adds the running header and page
numbers), navigation hidden, cards / figures / table rows never split, compact enough for the
dashboard's three pages. Phone (≤ 640 px): tables scroll inside their box, never squeezing a cell
below two characters; a table over time opens at its latest column, its first column kept in view.
"""

from __future__ import annotations

import re

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
.period{font-weight:bold;color:#1f4f63}.group{margin:10px 0 4px;font-size:15px;color:#1f4f63}
.article{color:#8a5a00;font-size:12px}
details.folded>summary{cursor:pointer;font-weight:bold;margin:6px 0}
.attention{border-left:4px solid #b35c00}.attention ul{margin:4px 0;padding-left:1.4em}
td.heat{text-align:center;min-width:2.6em}.legend span.heat{padding:1px 8px}
.h0{background:#f4f8f4;color:#999}.h1{background:#fcefd2}.h2{background:#f3a77a}.h3{background:#b3202f;color:#fff}
/* phone: tables scroll inside their box, never squeeze a cell below two characters; a table over
   time opens at its latest column (the box scrolls right-to-left), its first column stays put */
th,td{min-width:2.2em}
@media (max-width:640px){
header,main,footer{padding:0 8px}section{padding:4px 8px 10px}h1{font-size:20px}
th,td{white-space:nowrap}
.table-wrap.latest-first{direction:rtl}.table-wrap.latest-first table{direction:ltr}
.table-wrap table th:first-child,.table-wrap table td:first-child{position:sticky;left:0;background:#fff;z-index:1}
.table-wrap table th:first-child{background:#eef3f5}
.cards{grid-template-columns:1fr}.charts{grid-template-columns:1fr}
}
/* print: A4, navigation hidden, nothing split across pages, compact enough for the dashboard's
   three pages; the running header (report date, period) and page numbers are in each page's @page */
@media print{
body{background:#fff;font-size:11px;line-height:1.35}
nav,.downloads,.en,footer,.noprint{display:none}
header,main{max-width:none;padding:0}h1{font-size:16px}.subtitle,.meta{font-size:11px;margin:0}
section{border:0;margin:4px 0;padding:0;break-inside:auto}
h2{font-size:13px;margin:6px 0 4px;padding-bottom:2px;break-after:avoid}h3,.group{break-after:avoid}
.narrative{font-size:11px;line-height:1.5;padding:4px 8px;margin:4px 0}
.cards{grid-template-columns:repeat(4,1fr);gap:4px}
.card{padding:3px 6px;break-inside:avoid}.card h3{font-size:11px}.card .value{font-size:14px;margin:0}
.card p{margin:0}.detail,.definition,.coverage,.article{font-size:9px;line-height:1.25}
.charts{grid-template-columns:repeat(4,1fr);gap:4px}
figure{break-inside:avoid}figcaption{font-size:9px;break-after:avoid}
table{font-size:9px}th,td{padding:1px 3px}tr{break-inside:avoid}thead{display:table-header-group}
.table-wrap{overflow:visible}.note{font-size:9px}
a{color:inherit;text-decoration:none}
}
"""

#: Chinese text uses full-width punctuation: （）：；， beside Chinese characters
_CJK = "\u3400-\u9fff\u3000-\u303f\uff01-\uff5e"
_PAREN = re.compile(r"\(([^()]{0,200})\)")


def zh_punct(text: str) -> str:
    """Half-width ( ) : ; , written beside Chinese characters become （ ）：；，; English and
    numbers (``Excel (.xlsx)``, ``09:30``, ``1,000``) are left alone. For our own text only —
    never for data such as a file's name."""

    def paren(match: re.Match[str]) -> str:
        before = match.string[match.start() - 1] if match.start() else ""
        inner = match.group(1)
        if re.match(f"[{_CJK}]", before) or re.search(f"[{_CJK}]", inner):
            return f"（{inner}）"
        return match.group(0)

    text = _PAREN.sub(paren, text)
    text = re.sub(f"(?<=[{_CJK}]):|:(?=[{_CJK}])", "：", text)
    text = re.sub(f"(?<=[{_CJK}]);|;(?=[{_CJK}])", "；", text)
    return re.sub(f"(?<=[{_CJK}]),|,(?=[{_CJK}])", "，", text)
