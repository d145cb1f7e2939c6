"""Where the worked scenarios live.

The alliance's scenarios are kept in `../shared/scenarios/` beside the
checkout, where new ones get added; `tests/scenarios/` holds a copy so a
clone on its own still runs them. `REFLEDGER_SCENARIOS` names another
directory.
"""

from __future__ import annotations

import os
from pathlib import Path

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "scenarios"
_BUNDLED = Path(__file__).resolve().parent / "scenarios"


def _pick() -> Path:
    if os.environ.get("REFLEDGER_SCENARIOS"):
        return Path(os.environ["REFLEDGER_SCENARIOS"])
    if any(_SHARED.glob("*.jsonl")):
        return _SHARED
    return _BUNDLED


SCENARIOS = _pick()
