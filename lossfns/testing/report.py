"""The outcome of a parity run: one :class:`Cell` per loss and backend, and the :class:`Report`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .settings import GRADIENT_TOLERANCE, VALUE_TOLERANCE, Settings

STATUSES = ("pass", "fail", "error", "n/a", "skip")


def one_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first line of an exception's message (its type's name when empty)."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if with_type:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


@dataclass
class Cell:
    """One loss on one backend.

    ``status``: ``"pass"``, ``"fail"``, ``"error"``, ``"n/a"`` (backend not installed or
    without the device) or ``"skip"`` (the reference rejects the inputs).
    """

    status: str
    value_diff: float | None = None
    grad_diff: float | None = None
    message: str = ""


@dataclass
class Report:
    settings: Settings
    losses: list
    backends: list
    availability: dict  # backend -> "" when available, else why not
    cells: dict = field(default_factory=dict)  # (loss, backend) -> Cell
    skipped: dict = field(default_factory=dict)  # loss -> why the reference rejected it
    devices: dict = field(default_factory=dict)  # backend -> where it ran ("cpu", "cuda:0 (...)")
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(c.status in ("fail", "error") for c in self.cells.values())

    def counts(self) -> dict:
        return {k: sum(c.status == k for c in self.cells.values()) for k in STATUSES}

    def to_json(self) -> dict:
        """A JSON-ready dict (no NaN or infinity anywhere: ``json.dumps(..., allow_nan=False)``)."""
        s = self.settings
        return {
            "settings": {"shape": list(s.shape), "classes": s.classes, "sparse": s.sparse,
                         "from_logits": s.from_logits, "dtype": s.dtype, "seed": s.seed,
                         "fd_points": s.fd_points, "device": s.device},
            "tolerances": {"value": VALUE_TOLERANCE[s.dtype], "gradient": GRADIENT_TOLERANCE[s.dtype]},
            "backends": {b: {"available": not self.availability[b], "reason": self.availability[b],
                             "device": self.devices.get(b)} for b in self.backends},
            "results": {loss: {b: vars(self.cells[loss, b]) for b in self.backends} for loss in self.losses},
            "skipped": self.skipped,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
        }
