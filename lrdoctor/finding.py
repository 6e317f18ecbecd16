"""The result type every detector returns."""
from __future__ import annotations

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
        def num(v):
            if v is None:
                return None
            v = float(v)
            return int(v) if v == int(v) and abs(v) < 2**53 else v

        return {"kind": self.kind, "start": num(self.start), "end": num(self.end),
                "severity": round(float(self.severity), 3), "message": self.message}
