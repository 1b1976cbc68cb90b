"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps) and recovery codes. No I/O.

A code is accepted for the current step or one step either side (clock drift); the matching step
is returned so the caller can refuse any code of that step or earlier afterwards (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

ISSUER = "StreamSpace"
STEP_SECONDS = 30
WINDOW_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed by hand


def new_secret() -> str:
    """160 random bits, base32 (what authenticator apps expect)."""
    import pyotp

    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    import pyotp

    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as an SVG QR code, to show on the enrolment page."""
    import segno

    return str(segno.make(uri, error="m").svg_inline(scale=4))


def matching_step(secret: str, code: object, *, after_step: int | None, now: float | None = None) -> int | None:
    """The time step whose code `code` is, within ±1 step of now and later than `after_step`
    (the last step used), or None."""
    import pyotp

    if not isinstance(code, str):
        return None
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        # Compare every candidate (constant work), remember the match.
        if hmac.compare_digest(totp.generate_otp(step), code) and (after_step is None or step > after_step):
            found = step
    return found


def code_at(secret: str, when: float) -> str:
    """The code of the step containing `when` (what an authenticator app shows then)."""
    import pyotp

    return str(pyotp.TOTP(secret).generate_otp(int(when // STEP_SECONDS)))


def new_recovery_codes() -> list[str]:
    """Ten codes of 16 characters (80 bits each), shown once as xxxx-xxxx-xxxx-xxxx."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i:i + 4] for i in range(0, 16, 4)))
    return codes


def recovery_code_hash(code: str) -> bytes:
    """Recovery codes hold 80 random bits: a SHA-256 is enough (no slow hash needed), and the form
    a user types (any case, with or without dashes and spaces) hashes the same."""
    normal = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(("streamspace-recovery:" + normal).encode()).digest()
