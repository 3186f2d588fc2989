"""Prefect flows (control flow only) and the ``duikou`` command line."""
