"""Citizen ID numbers (公民身份号码, GB 11643-1999), checked a whole Arrow column at a time.

Layout of the 18 characters: 6 digits of the place of registration, 8 digits of birth date
(YYYYMMDD), 3 digits of sequence (the last odd for men, even for women) and a check character
``"10X98765432"[Σ digit_i × weight_i mod 11]`` with weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2.

``check_ids`` is pure and vectorised: the strings are normalised and matched with
``pyarrow.compute``, then the rows of the right shape (exactly 18 ASCII bytes each) are viewed as
one ``n × 18`` byte matrix, so the check digit, birth date and sex digit are a few numpy array
operations over the whole batch — no Python per row. It never formats an ID into a message:
callers get boolean masks and refer to rows by number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK_CHARACTERS = "10X98765432"
ID_PATTERN = r"^[0-9]{17}[0-9X]$"
#: what Excel shows for a number too long for it: 5.13323E+17, 5.13323e17, 513323E+12
EXCEL_MANGLED_PATTERN = r"^[0-9]+(\.[0-9]+)?[eE]\+?[0-9]+$"
_PLACEHOLDER = "000000000000000000"
_CHECK_BYTES = np.frombuffer(CHECK_CHARACTERS.encode("ascii"), dtype=np.uint8)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
EARLIEST_BIRTH_YEAR = 1900
_POWERS = 10 ** np.arange(16, -1, -1, dtype=np.int64)  # 17 digits fit in int64 (< 9.2e18)


def check_character(first17: str) -> str:
    """The GB 11643 check character for 17 digits (scalar; for generators and tests)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("the check character is defined for exactly 17 digits")
    total = sum(int(d) * int(w) for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARACTERS[total % 11]


@dataclass(frozen=True)
class IdChecks:
    """Per-row results for one batch; every mask has the batch's length, nulls already False.

    Exactly one of ``missing``, ``excel_mangled``, ``bad_format`` or "well-formed" holds per row;
    ``bad_check_digit`` and ``bad_birth_date`` are only set on well-formed rows.
    """

    normalised: pa.Array  # string: trimmed, x → X (the value the person key is computed from)
    missing: np.ndarray
    excel_mangled: np.ndarray
    bad_format: np.ndarray
    bad_check_digit: np.ndarray
    bad_birth_date: np.ndarray
    male: np.ndarray  # 17th digit odd (meaningful on well-formed rows)
    birth_year: np.ndarray  # int, 0 where not a valid date
    age: np.ndarray  # completed years at the snapshot date, -1 where unknown
    number17: np.ndarray  # int64 of the first 17 digits (identifies a well-formed ID; 0 otherwise)

    @property
    def well_formed(self) -> np.ndarray:
        return ~(self.missing | self.excel_mangled | self.bad_format)

    @property
    def valid(self) -> np.ndarray:
        """Well-formed, right check digit and a real birth date."""
        return self.well_formed & ~self.bad_check_digit & ~self.bad_birth_date


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def normalise_ids(ids: pa.Array) -> pa.Array:
    """Trim whitespace and upper-case the check character (x → X); nulls stay null."""
    text = ids if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type) else pc.cast(ids, pa.string())
    return pc.utf8_upper(pc.utf8_trim_whitespace(text))


def _digit_matrix(normalised: pa.Array, well_formed: np.ndarray) -> np.ndarray:
    """The well-formed rows as an ``n × 18`` uint8 matrix (others are zeros)."""
    fixed = pc.if_else(pa.array(well_formed), normalised, pa.scalar(_PLACEHOLDER))
    fixed = pc.cast(fixed, pa.string())
    if isinstance(fixed, pa.ChunkedArray):
        fixed = fixed.combine_chunks()
    fixed = pa.concat_arrays([fixed])  # own buffers, offsets from 0
    data = fixed.buffers()[2]
    n = len(fixed)
    raw = np.frombuffer(data, dtype=np.uint8, count=18 * n) if n else np.zeros(0, dtype=np.uint8)
    return raw.reshape(n, 18)


def check_ids(ids: pa.Array, snapshot: date) -> IdChecks:
    """Check a column of ID numbers as of ``snapshot`` (the registry's date, for birth and age)."""
    normalised = normalise_ids(ids)
    missing = _mask(pc.or_kleene(pc.is_null(normalised), pc.equal(normalised, "")))
    mangled = _mask(pc.match_substring_regex(normalised, EXCEL_MANGLED_PATTERN)) & ~missing
    shaped = _mask(pc.match_substring_regex(normalised, ID_PATTERN))
    bad_format = ~missing & ~mangled & ~shaped
    matrix = _digit_matrix(normalised, shaped)
    digits = matrix[:, :17].astype(np.int64) - 48
    expected = _CHECK_BYTES[(digits @ WEIGHTS) % 11]
    bad_check = shaped & (matrix[:, 17] != expected)

    year = digits[:, 6] * 1000 + digits[:, 7] * 100 + digits[:, 8] * 10 + digits[:, 9]
    month = digits[:, 10] * 10 + digits[:, 11]
    day = digits[:, 12] * 10 + digits[:, 13]
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + (leap & (month == 2))
    as_number = year * 10_000 + month * 100 + day
    snapshot_number = snapshot.year * 10_000 + snapshot.month * 100 + snapshot.day
    date_ok = (month_ok & (day >= 1) & (day <= days) & (year >= EARLIEST_BIRTH_YEAR)
               & (as_number <= snapshot_number))
    bad_birth = shaped & ~date_ok
    good_date = shaped & date_ok
    had_birthday = (month * 100 + day) <= (snapshot.month * 100 + snapshot.day)
    age = np.where(good_date, snapshot.year - year - (~had_birthday).astype(np.int64), -1)
    return IdChecks(
        normalised=normalised,
        missing=missing,
        excel_mangled=mangled,
        bad_format=bad_format,
        bad_check_digit=bad_check,
        bad_birth_date=bad_birth,
        male=(digits[:, 16] % 2 == 1),
        birth_year=np.where(good_date, year, 0),
        age=age,
        number17=np.where(shaped, digits @ _POWERS, 0),
    )
