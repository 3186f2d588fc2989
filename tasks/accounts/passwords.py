"""Password hashing with scrypt (hashlib, no extra dependency): ``scrypt$n$r$p$salt$hash`` in hex."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_N, _R, _P, _LEN = 2**14, 8, 1, 32
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str | None) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; a malformed or missing hash never matches."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                                   p=int(p), dklen=len(bytes.fromhex(digest)))
    except (ValueError, OverflowError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be used, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少{MIN_PASSWORD_LENGTH}个字符 (password shorter than {MIN_PASSWORD_LENGTH} characters)"
    if password.strip() != password:
        return "密码首尾不能有空格 (password starts or ends with a space)"
    return None
