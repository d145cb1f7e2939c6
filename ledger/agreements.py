"""Agreement versions and their resolution for a (merchant, referrer) pair (SPEC §5).

Resolution at time t: the most specific scope wins — (M, R), then (M, *),
then (*, R), then (*, *); within a scope, the version with the greatest
``effective_from`` ≤ t, then the greatest ``version`` (then agreement id and
event id, so two publications of one version still resolve deterministically);
a scope with no version in effect at t is skipped. ``None`` means model
``none``.

For speed the resolved agreements of a pair are kept as a timeline
(breakpoints at every ``effective_from`` of the four scopes), rebuilt lazily
after any new agreement event.
"""

from __future__ import annotations

from bisect import bisect_right

from refledger.ledger.events import ANY, Agreement


class _ScopeVersions:
    __slots__ = ("keys", "starts", "versions")

    def __init__(self):
        self.keys: list[tuple] = []
        self.starts: list[int] = []
        self.versions: list[Agreement] = []

    def add(self, a: Agreement) -> None:
        i = bisect_right(self.keys, a.precedence)
        self.keys.insert(i, a.precedence)
        self.starts.insert(i, a.effective_from)
        self.versions.insert(i, a)

    def in_effect(self, t: int) -> Agreement | None:
        i = bisect_right(self.starts, t) - 1
        return self.versions[i] if i >= 0 else None


def scopes_for(merchant: str, referrer: str) -> tuple[tuple[str, str], ...]:
    """The scopes that can govern (merchant, referrer), most specific first."""
    return ((merchant, referrer), (merchant, ANY), (ANY, referrer), (ANY, ANY))


class AgreementBook:
    """Every agreement version folded in this partition."""

    __slots__ = ("_scopes", "_timelines")

    def __init__(self):
        self._scopes: dict[tuple[str, str], _ScopeVersions] = {}
        self._timelines: dict[tuple[str, str], tuple[list[int], list[Agreement | None]]] = {}

    def add(self, a: Agreement) -> None:
        scope = (a.merchant_shop_id, a.referrer_shop_id)
        versions = self._scopes.get(scope)
        if versions is None:
            versions = self._scopes[scope] = _ScopeVersions()
        versions.add(a)
        self._timelines.clear()

    def size(self) -> int:
        """How many agreement versions are known."""
        return sum(len(v.versions) for v in self._scopes.values())

    def versions(self) -> list[Agreement]:
        """Every version folded, in a stable order (for a snapshot; ``add`` them back to restore)."""
        return sorted((a for v in self._scopes.values() for a in v.versions),
                      key=lambda a: (a.merchant_shop_id, a.referrer_shop_id, a.precedence))

    def resolve(self, merchant: str, referrer: str, t: int) -> Agreement | None:
        """The agreement governing (merchant, referrer) at t, or None (model none)."""
        timeline = self._timelines.get((merchant, referrer))
        if timeline is None:
            timeline = self._timelines[(merchant, referrer)] = self._build(merchant, referrer)
        starts, resolved = timeline
        i = bisect_right(starts, t) - 1
        return resolved[i] if i >= 0 else None

    def _build(self, merchant: str, referrer: str):
        scopes = [v for v in (self._scopes.get(s) for s in scopes_for(merchant, referrer)) if v is not None]
        starts = sorted({start for v in scopes for start in v.starts})
        resolved: list[Agreement | None] = []
        for start in starts:
            found = None
            for versions in scopes:
                found = versions.in_effect(start)
                if found is not None:
                    break
            resolved.append(found)
        return starts, resolved
