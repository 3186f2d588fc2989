"""The steps of a submission's way through duikou: plain functions, plus thin Prefect wrappers."""
