"""The person-level path: stream, read, checks, ID numbers, its docs and its Prefect wrappers."""
