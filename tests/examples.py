"""How many examples a property test draws.

Each property names its own number; `bench/mutation.py` runs the suite once per
mutant and sets ``REFLEDGER_EXAMPLES_SCALE`` (a fraction) together with the
derandomized ``mutation`` profile (`tests/conftest.py`), so that a mutant the
properties cannot kill costs seconds, and the same mutant meets the same
examples on every run. Everywhere else the scale is 1.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("REFLEDGER_EXAMPLES_SCALE", "1"))


def examples(n: int) -> int:
    """``n`` scaled, never fewer than 10."""
    return max(10, round(n * SCALE)) if SCALE != 1 else n
