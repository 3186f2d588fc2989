"""What each issue code means and what the department should do about it, in Chinese: the one place.

The receipt page of the portal (``flows/portal.py``), the correction workbook
(``tasks/submission/correction_workbook.py``) and the issue-code tables of ``docs/departments.md``
(columns 含义 and 怎样改正) all say the same thing because they all come from here:
``tests/forms/test_corpus.py`` checks that every row of the docs' tables equals :data:`GUIDANCE`,
and that every code of the catalogue (:data:`expectations.issues.ISSUE_CODES`) has its entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Guidance:
    meaning_zh: str  # 含义: what the issue is
    advice_zh: str  # 怎样改正: what to do about it


#: issue code → its meaning and its advice (the docs' tables hold exactly these texts)
GUIDANCE: dict[str, Guidance] = {
    "FILE_EMPTY": Guidance(
        "文件为0字节，或工作簿/CSV 中没有任何内容",
        "确认保存的是填好的报表后重报"),
    "FILE_UNREADABLE": Guidance(
        "文件不是可读的 .xlsx/.xls/.csv：已损坏、不完整、设置了密码，或扩展名与内容不符（说明中写明实际格式）",
        "在 Excel 中打开，另存为 .xlsx（取消密码）后重报"),
    "FILE_FORMAT_UNSUPPORTED": Guidance(
        "扩展名不是 .xlsx、.xls 或 .csv",
        "另存为 .xlsx 后重报"),
    "FILE_TOO_LARGE": Guidance(
        "文件超过大小上限（20 MB），未作任何读取（只保留文件开头 64 KB 以供核查）",
        "删除多余的工作表、图片，只保留本表后重报"),
    "FILE_UNSAFE": Guidance(
        "文件结构异常、可能是恶意构造：解压后过大或压缩比异常、内部 XML 含 DOCTYPE/实体声明、"
        "单元格或合并单元格数量超过上限",
        "把报表内容复制到县里下发的新表样中，另存为 .xlsx 后重报"),
    "ENCODING_UNDECODABLE": Guidance(
        "CSV 既不是 UTF-8，也不是 GBK/GB18030，无法解码",
        "在 Excel 中另存为“CSV UTF-8”或 .xlsx 后重报"),
    "ENCODING_DETECTED": Guidance(
        "说明 CSV 按哪种编码读取",
        "无需处理"),
    "SHEET_AMBIGUOUS": Guidance(
        "有多个可见工作表都像本表，无法确定读哪一个",
        "删除或隐藏多余的工作表，只保留本期报表"),
    "SHEET_CHOSEN": Guidance(
        "说明读取了多个工作表中的哪一个",
        "核实读取的是本期报表"),
    "HEADER_NOT_FOUND": Guidance(
        "找不到关键列“乡(镇)”所在的表头",
        "使用县里下发的表样，关键列标题写“乡(镇)”"),
    "COLUMN_MISSING": Guidance(
        "缺少必填指标列",
        "按表样补齐该列后重报"),
    "COLUMN_OPTIONAL_MISSING": Guidance(
        "缺少可选指标列",
        "有数据时按表样补上"),
    "COLUMNS_HIDDEN": Guidance(
        "被隐藏的列中有数据，已照常读取",
        "取消隐藏，核实该列数据"),
    "COLUMN_ALIAS": Guidance(
        "表头按登记的别名识别（或未注明单位，按表样单位读取）",
        "无需处理；今后请用表样原文"),
    "COLUMN_UNKNOWN": Guidance(
        "出现表样中没有的列（或有数据却没有表头的列），其内容不会作为任何指标读取",
        "删除多余的列，或改回表样的列名"),
    "UNIT_MISMATCH": Guidance(
        "表头或“单位”行注明的单位与表样不同（如元与万元，说明中写明相差倍数）；人与人次等不能换算的单位则退回",
        "按表样单位填写数值并改正单位"),
    "COLUMN_DUPLICATE": Guidance(
        "两列对应同一个指标",
        "删除重复的列"),
    "PERIOD_MISMATCH": Guidance(
        "标题中的报告期与报送的报告期不一致",
        "改正标题中的年月，或按正确的报告期报送"),
    "PERIOD_AMBIGUOUS": Guidance(
        "标题中的报告期有两种读法（如 2017.1 可能是2017年10月）",
        "标题写成“2017年10月”这样的形式"),
    "PERIOD_INVALID": Guidance(
        "报送时选择的报告期格式不对（月报为 年-月，年报为 年）",
        "选择正确的报告期重报"),
    "TITLE_DEPARTMENT_MISMATCH": Guidance(
        "标题是另一个部门的报表（没有标题时：表头是另一个部门报表的表头），可能报错了部门或表样；由此引起的缺列、"
        "多列等问题在回执中归在这一根本原因之下（`caused_by`）",
        "报送本部门的报表"),
    "TOWNSHIP_UNKNOWN": Guidance(
        "乡镇名称无法识别：错字、报告期内已不用的旧名称、帮扶街道名称等（说明中给出可能的正确名称）",
        "改为报告期内有效的正式乡镇名称"),
    "TOWNSHIP_DUPLICATE": Guidance(
        "同一乡镇出现在两行",
        "每个乡镇只保留一行"),
    "TOWNSHIP_MISSING": Guidance(
        "报告期内有效的乡镇在表中缺少",
        "补报缺少的乡镇（整表重报）"),
    "TOWNSHIP_ALIAS": Guidance(
        "乡镇按简称、报告期内有效的旧名称或繁体字识别",
        "无需处理；今后请写正式名称"),
    "TOWNSHIP_CODE_MISMATCH": Guidance(
        "“区划代码”列的代码与同一行的乡镇名称不符（说明中写明该乡镇应有的代码、表中代码属于哪个乡镇），或代码在报告期内无效",
        "核对该行的乡镇名称和区划代码，改正后重报"),
    "NEWER_VERSION_LOADED": Guidance(
        "再次收到的旧文件，而本期已有更晚收到的版本入库；旧数据不会自动覆盖新数据",
        "无需处理；如确要以旧文件为准，由县里核准放行"),
    "TOTAL_ROW_MISSING": Guidance(
        "没有合计行（或合计行没有数值），无法核对；另有小计行未作为数据读取时也用此代码说明",
        "按表样加上合计行"),
    "TOTAL_MISMATCH": Guidance(
        "合计行与各乡镇之和不一致（说明中给出两者及差额，逐列列出）",
        "核对各乡镇数据和合计行，改正后重报"),
    "TOTAL_IS_PLAIN_SUM": Guidance(
        "人均数或比率列（如农牧民人均纯收入、参保率）的合计行等于各乡镇数值直接相加（多半是把求和公式横向复制了）"
        "：该列合计不作核对，各乡镇数值照常入库",
        "人均数、比率的合计请填全县加权平均数"),
    "VALUE_NOT_NUMBER": Guidance(
        "单元格不能读作数值（如“约600”“12人次”，或没有计算结果的公式）",
        "只填数字；公式请在 Excel 中打开并保存"),
    "VALUE_COERCED": Guidance(
        "文本形式的数字已转换（千位分隔符、全角数字、本列单位、百分号、整列小数形式的比率×100），逐格记录",
        "无需处理"),
    "VALUE_NULL_TOKEN": Guidance(
        "“—”“/”“无”等按空值读取",
        "必填列中出现时见 `VALUE_REQUIRED_MISSING`"),
    "VALUE_REQUIRED_MISSING": Guidance(
        "必填指标为空",
        "填上数值（没有就填0）"),
    "VALUE_EXCEL_ERROR": Guidance(
        "单元格是 Excel 错误值（如 #DIV/0!、#REF!）",
        "修正公式或直接填数值"),
    "RATE_AMBIGUOUS": Guidance(
        "比率列中既有百分数（`95`、文字“99.8%”或显示为百分比的单元格）又有小数（`0.97` 可能是0.97%也可能是97%）",
        "整列统一填百分数"),
    "VALUE_NOT_INTEGER": Guidance(
        "人数、户数、人次不是整数",
        "填整数"),
    "VALUE_NEGATIVE": Guidance(
        "数量或金额为负数",
        "改正数值"),
    "ROWS_EMPTY": Guidance(
        "有表头但没有乡镇数据行（不接受无数据申报的报表写了“本月无数据”也是如此）",
        "填写各乡镇数据后重报"),
    "NIL_RETURN": Guidance(
        "无数据申报：表头下只有“本月无数据”“本期无”“无”等一行（或在报送门户点击“本期无数据”），按已报送记录，"
        "没有数据入库；只有申报定义允许无数据申报的报表才接受（见 datasets.md 各表“nil return”）",
        "无需处理"),
    "SUBLINE_IGNORED": Guidance(
        "乡镇行下方的“其中”分项行不是申报定义中的分项（或没有分项名称），其数值未读取",
        "删除该分项行，或按表样把分项填在对应的列中"),
    "ROW_TRUNCATED": Guidance(
        "CSV 中某行的字段数少于表头，或文件在一行中间结束（文件被截断）",
        "重新从 Excel 导出完整的 CSV，或报送 .xlsx"),
    "ROWS_HIDDEN": Guidance(
        "被隐藏的行已作为数据读取（不会被丢弃）",
        "取消隐藏，核实这些行"),
    "CHECK_ERROR": Guidance(
        "某项校验无法执行，需工作人员查看",
        "无需处理，等待工作人员联系"),
    "CUMULATIVE_DECREASED": Guidance(
        "“本年累计”指标小于该乡镇上月数（本月数与本年累计可能填反）",
        "核对本年累计数后重报"),
    "MAGNITUDE_SUSPECT": Guidance(
        "数值与该乡镇历史数据相差千倍以上（疑似元与万元、人次与万人次混用）",
        "核对单位和数值后重报"),
    "VALUE_OUTLIER": Guidance(
        "数值明显偏离该乡镇自身历史（修正Z分数超过阈值；月报优先与往年同月比较）",
        "核实数值；确属实情的，由县里在跟进清单中“接受”，以后不再标记"),
    "VALUE_OUT_OF_BAND": Guidance(
        "数值超出报表声明的合理范围",
        "核实数值，有误则更正重报"),
    "INCREMENT_MISMATCH": Guidance(
        "“本月”数不等于“本年累计”较上月的增加数",
        "核对本月数与本年累计数（是否填反）后更正重报"),
    "RULE_FAILED": Guidance(
        "未通过申报定义中的校验规则（如过夜游客多于接待游客）；规则可定为严重并退回或待核",
        "按说明核对相关单元格"),
    "DUPLICATE_SUBMISSION": Guidance(
        "与此前收到的文件完全相同，未重复入库",
        "无需处理"),
    "CELL_TRUNCATED": Guidance(
        "单元格文字超过1000个字符，只读取了前1000个字符（说明中写明工作表、行、列和原有字符数）",
        "删除该单元格中多余的内容"),
    "PERSON_ID_EXCEL_MANGLED": Guidance(
        "身份证号被 Excel 显示成 5.13323E+17 这样的科学计数，后几位已经丢失",
        "把该列设为“文本”格式，从原始名册重新粘贴身份证号"),
    "PERSON_ID_INVALID": Guidance(
        "身份证号不是18位（17位数字加1位数字或X）",
        "对照户口簿或身份证更正"),
    "PERSON_ID_CHECK_DIGIT": Guidance(
        "身份证号最后一位校验码不对（GB 11643），多半是抄错了一位",
        "对照身份证逐位核对"),
    "PERSON_ID_BIRTH_DATE": Guidance(
        "身份证号第7–14位不是真实的出生日期",
        "对照身份证更正"),
    "PERSON_SEX_MISMATCH": Guidance(
        "填写的性别与身份证号第17位（单数为男、双数为女）不符",
        "核对性别或身份证号"),
    "PERSON_DUPLICATE": Guidance(
        "同一身份证号出现在多行（回执列出这些行号）",
        "合并重复的行，一人一行"),
    "PERSON_AGE_OUT_OF_BAND": Guidance(
        "年龄不在劳动年龄段（男16–60岁，女16–55岁）",
        "确认此人是否应在名册中"),
    "VALUE_NOT_ALLOWED": Guidance(
        "就业状态、证书等级、文化程度等填了规定选项以外的内容",
        "按表样的下拉选项填写"),
    "VALUE_OUT_OF_RANGE": Guidance(
        "数值超出申报定义中的合理范围",
        "核实数值"),
    "VALUE_NOT_DATE": Guidance(
        "日期列填的不是日期（可写 2018-01-10、2018/01/10 或 20180110），或日期不存在（如2月30日）",
        "按年-月-日填写真实日期"),
    "VALUE_DUPLICATE": Guidance(
        "申报定义中要求唯一的列（如学籍号）出现重复值（回执列出这些行号）",
        "核对重复的行，一人一行"),
    "ROWS_NOT_ALL_LISTED": Guidance(
        "同一问题的行太多，回执只列出一部分，但全部计数",
        "按列出的行找出规律后整体更正"),
    "REGISTRY_RECONCILIATION": Guidance(
        "名册统计的人数与人社局当月月报（就业扶贫工作进展月报表）的数字相差超过容差",
        "核对名册与月报，哪一边漏报或多报"),
    "PERSON_KEY_MISSING": Guidance(
        "县里的系统未配置加密密钥（DUIKOU_PERSON_KEY），名册暂不能入库",
        "不用部门处理：由县里运维配置后重新处理"),
}


def advice_for(code: str) -> str:
    """怎样改正 for ``code``; "" for a code without guidance (none: a test keeps the catalogue covered)."""
    found = GUIDANCE.get(code)
    return found.advice_zh if found is not None else ""


def needs_no_action(code: str) -> bool:
    """True when the advice is only that nothing needs doing (提示 items that explain a reading)."""
    return advice_for(code).startswith("无需处理")
