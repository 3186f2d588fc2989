"""One submission's journey and its receipt: receive, parse, validate, load, receipt, correction
workbook, quarantine decisions, writer slots, and their thin Prefect wrappers (``steps``)."""
