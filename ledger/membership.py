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

    def insert(self, at: int, event_id: str, status: str) -> None:
        key = (at, event_id)
        i = bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.times.insert(i, at)
        self.statuses.insert(i, status)

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

    def rows(self):
        """(shop_id, occurred_at, event_id, status) of every member event folded, for a snapshot."""
        for shop in sorted(self._timelines):
            timeline = self._timelines[shop]
            for (at, event_id), status in zip(timeline.keys, timeline.statuses):
                yield shop, at, event_id, status

    def restore(self, rows) -> None:
        for shop, at, event_id, status in rows:
            self._known.add(shop)
            timeline = self._timelines.get(shop)
            if timeline is None:
                timeline = self._timelines[shop] = _Timeline()
            timeline.insert(at, event_id, status)

    def record(self, m: Member) -> None:
        self._known.add(m.member_shop_id)
        self.restore([(m.member_shop_id, m.occurred_at, m.event_id, m.status)])

    def status_at(self, shop: str, t: int) -> str | None:
        """'active', 'suspended', 'expelled', or None when not yet a member at t."""
        timeline = self._timelines.get(shop)
        return timeline.at(t) if timeline is not None else None

    def is_active(self, shop: str, t: int) -> bool:
        timeline = self._timelines.get(shop)
        return timeline is not None and timeline.at(t) == "active"


__all__ = ["Membership"]
