"""Who was a member of the alliance, with which status, when (SPEC §14 "status and the dates it
changed"), from the folded `member` events.

The status at time t is the fold's own rule (`refledger.ledger.membership`):
the latest `member` event with `occurred_at` ≤ t, ties broken by the greater
event id. A change is a member event whose status differs from the one
before it; a member event that restates the same status (a new public key,
say) is no change.
"""

from __future__ import annotations

from typing import NamedTuple

from refledger.ledger.events import parse_event
from refledger.ledger.membership import Membership
from refledger.reports.folded import MEMBER_EVENTS
from refledger.schemas import codec


class StatusChange(NamedTuple):
    at: int          # UTC epoch milliseconds
    status: str


class MemberHistory:
    """Every shop's member events, in event time."""

    def __init__(self, members):
        self._membership = Membership()
        self._events: dict[str, list[tuple[int, str, str]]] = {}
        for member in members:
            self._membership.record(member)
            self._events.setdefault(member.member_shop_id, []).append(
                (member.occurred_at, member.event_id, member.status))
        for events in self._events.values():
            events.sort()

    def members(self, until: int) -> list[str]:
        """The shops made members by a member event at or before ``until``, by shop id."""
        return sorted(shop for shop, events in self._events.items() if events[0][0] <= until)

    def status_at(self, shop_id: str, at: int) -> str | None:
        """'active', 'suspended', 'expelled', 'left', or None before its first member event."""
        return self._membership.status_at(shop_id, at)

    def changes(self, shop_id: str, until: int) -> list[StatusChange]:
        """The dates its status changed, up to ``until``; the first is when it joined."""
        events = self._events.get(shop_id, [])
        found: list[StatusChange] = []
        for occurred_at, _event_id, status in events:
            if occurred_at > until:
                break
            if not found or found[-1].status != status:
                found.append(StatusChange(occurred_at, status))
        return found

    def steady_since(self, shop_id: str, since: int, until: int) -> bool:
        """No member event in (since, until] set a status other than the one in force at ``since``."""
        before = self.status_at(shop_id, since)
        return all(status == before for at, _eid, status in self._events.get(shop_id, ()) if since < at <= until)


def member_history(cur) -> MemberHistory:
    rows = cur.execute(f"SELECT avro FROM {MEMBER_EVENTS}").fetchall()
    return MemberHistory(parse_event(codec.decode(bytes(avro))) for (avro,) in rows)
