"""The static report site: pages, charts, tables, exports, and its Prefect wrapper."""
