"""The control rate: which one applies and which ones are allowed."""

from __future__ import annotations

import math

from physai.core.errors import UserError

DEFAULT_RATE_HZ = 50.0
MAX_RATE_HZ = 1000.0


def check_rate(rate_hz: float) -> float:
    """`rate_hz` when it is a usable control rate (above 0, at most 1000 Hz); UserError else."""
    if not (math.isfinite(rate_hz) and 0 < rate_hz <= MAX_RATE_HZ):
        raise UserError(
            f"control rate must be above 0 and at most {MAX_RATE_HZ:g} Hz, not {rate_hz:g}"
        )
    return float(rate_hz)


def control_rate(asked: float | None, card_rate: float | None) -> float:
    """The rate to run at: `asked` when set (not None or 0), else the card's, else 50 Hz."""
    return check_rate(asked or card_rate or DEFAULT_RATE_HZ)
