"""Who is a member, and with which status at a given event time.

Two different questions, kept apart on purpose:

* ``known_shops`` — has the shop ever been made a member *earlier in this
  partition's log* (whatever its status or the member event's time)? This is
  the SPEC §4 ``unknown_shop`` rule, so it follows log order.
* ``status_at(shop, t)`` — the status set by the shop's latest ``member``
  event with ``occurred_at`` ≤ t (ties: the greater event id). This follows
  event time, so a late ``member`` event changes the past (SPEC §8, §9).
"""

from __future__ import annotations

from bisect import bisect_right

from refledger.ledger.events import Member


class _Timeline:
    __slots__ = ("keys", "times", "statuses")

    def __init__(self):
        self.keys: list[tuple[int, str]] = []
        self.times: list[int] = []
        self.statuses: list[str] = []

    def add(self, m: Member) -> None:
        key = (m.occurred_at, m.event_id)
        i = bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.times.insert(i, m.occurred_at)
        self.statuses.insert(i, m.status)

    def at(self, t: int) -> str | None:
        i = bisect_right(self.times, t) - 1
        return self.statuses[i] if i >= 0 else None


class Membership:
    """The alliance's members as this partition has folded them."""

    __slots__ = ("_known", "_timelines")

    def __init__(self):
        self._known: set[str] = set()
        self._timelines: dict[str, _Timeline] = {}

    @property
    def known_shops(self) -> set[str]:
        """The shops made members so far in the log (the live set: read it, never change it)."""
        return self._known

    def record(self, m: Member) -> None:
        self._known.add(m.member_shop_id)
        timeline = self._timelines.get(m.member_shop_id)
        if timeline is None:
            timeline = self._timelines[m.member_shop_id] = _Timeline()
        timeline.add(m)

    def status_at(self, shop: str, t: int) -> str | None:
        """'active', 'suspended', 'expelled', or None when not yet a member at t."""
        timeline = self._timelines.get(shop)
        return timeline.at(t) if timeline is not None else None

    def is_active(self, shop: str, t: int) -> bool:
        timeline = self._timelines.get(shop)
        return timeline is not None and timeline.at(t) == "active"


__all__ = ["Membership"]
