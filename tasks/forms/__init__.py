"""Bytes → grid → canonical rows: read, layout, normalise, number text, periods, townships."""
