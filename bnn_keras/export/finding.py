"""One answered question of the deployability check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    """One question of the deployability check, answered."""

    check: str
    ok: bool
    detail: str
