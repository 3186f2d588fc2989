"""Rows → outcome: the GX suite run, issues, flags and the outcome they decide."""
