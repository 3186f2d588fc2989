"""The submission key: who sent the file and what it is.

``submission_id`` = the first 16 hex digits of ``sha256(department ":" file sha256)``. The same
bytes sent by two departments are two submissions (each its own ledger row, status and
receipt); the same bytes sent twice by one department are one. Ledger rows written before
migration 0012 keep the id they were given then (the first 16 hex digits of the file's sha256):
an id is never recomputed from a row, it is read from it.

No dependencies beyond hashlib: the intake server, the landing scan and the loader all call it.
"""

from __future__ import annotations

import hashlib

ID_LENGTH = 16


def submission_key(department: str, sha256: str) -> str:
    """The submission id of the file with this sha256 (64 hex digits) sent by ``department``."""
    if not department or ":" in department:
        raise ValueError(f"department {department!r} cannot be part of a submission key")
    return hashlib.sha256(f"{department}:{sha256}".encode()).hexdigest()[:ID_LENGTH]


def legacy_key(sha256: str) -> str:
    """The id a ledger row written before migration 0012 carries: the file's sha256 alone."""
    return sha256[:ID_LENGTH]
