"""The result type every detector returns."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One thing a detector saw in a loss curve.

    Parameters
    ----------
    kind : str
        ``nonfinite``, ``explosion``, ``spike``, ``divergence``, ``oscillation``, ``plateau``,
        ``slow`` or ``overfitting`` (more kinds may be added).
    start, end : float or None
        The span in the log's own step units; ``end`` is None while it still goes on at the
        end of the log.
    severity : float
        0..1: how strongly the curve shows it.
    message : str
        One sentence with the numbers behind it.
    evidence : dict
        The numbers themselves (thresholds used included), for plots, tests and JSON.
    """

    kind: str
    start: float | None
    end: float | None
    severity: float
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "start": _num(self.start), "end": _num(self.end),
                "severity": round(float(self.severity), 3), "message": self.message}

    def __repr__(self) -> str:
        # numbers as Python writes them (a step is no 'np.int64(0)'), evidence numbers to 3
        # figures and its lists by their length
        ev = ", ".join(f"{k!r}: {_short(v)}" for k, v in self.evidence.items())
        return (f"Finding(kind={self.kind!r}, start={_num(self.start)!r}, "
                f"end={_num(self.end)!r}, severity={round(float(self.severity), 3)!r}, "
                f"message={self.message!r}, evidence={{{ev}}})")


def _short(v) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return repr(v)
    if isinstance(v, numbers.Integral):
        return repr(int(v))
    if isinstance(v, numbers.Real):
        return repr(float(f"{float(v):.3g}"))
    return f"<{len(v)} values>" if hasattr(v, "__len__") else repr(v)


def _num(v):
    """A span's end for JSON and repr: an int when whole (and exact in a double)."""
    if v is None:
        return None
    v = float(v)
    return int(v) if v == int(v) and abs(v) < 2**53 else v
