"""What the fold keeps costs little per item (SPEC §9a; a ledger runs for years).

A month's events are remembered until the month is closed (to tell a
re-delivery from a conflicting duplicate), and every closed order for ever
(to find a re-sent order or a refund of a closed one). Both are digests, not
the events' ids and times: measured here as the fold's own memory for one
more event or one more closed order, with Python's allocation tracer.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from refledger.ledger.fold import PartitionFold
from tests.ledger_support import Alliance

SHOPS = ("m-maple", "n-nori", "o-oak")
OPEN_EVENT_BYTES = 176   # a remembered view: its id's digest, its content's digest and time, a dict slot
CLOSED_ORDER_BYTES = 24  # a closed order: its 16-byte digest, side by side with the others


def fold_memory(records) -> tuple[PartitionFold, int]:
    """The fold of ``records`` (made one by one and not kept) and the bytes it holds."""
    gc.collect()
    tracemalloc.start()
    try:
        fold = PartitionFold()
        for record in records:
            fold.apply(record)
        gc.collect()
        return fold, tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def members(a: Alliance):
    yield from (a.member(s, at="2026-09-01T00:00") for s in SHOPS)
    yield a.agreement(at="2026-09-01T00:00", rate_bp=800, window=7, hold=5, effective_from="2026-09-01T00:00")


def views(n: int):
    a = Alliance("maple-row")
    yield from members(a)
    for i in range(n):
        yield a.view(f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:00", "m-maple", "n-nori", f"visitor-{i:06d}",
                     event_id=f"maple-row-view-{i:08d}")


def orders_then_close(n: int):
    a = Alliance("maple-row")
    yield from members(a)
    for i in range(n):
        yield a.order(f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:00", "o-oak", f"visitor-{i:06d}", f"OAK-2026-{i:08d}",
                      [(1, 5000 + i, "garden")], event_id=f"maple-row-order-{i:08d}")
    yield a.settlement("2026-11-01T00:00", "2026-10-31T23:59:59.999Z", "2026-10")
    yield a.close("2026-11-01T00:00:01", "2026-10-31T23:59:59.999Z", "2026-10")


def per_item(story, small: int, large: int) -> float:
    (_, few), (fold, many) = fold_memory(story(small)), fold_memory(story(large))
    return (many - few) / (large - small), fold


def test_an_open_months_event_is_remembered_in_a_few_dozen_bytes():
    cost, fold = per_item(views, 4_000, 12_000)
    assert fold.state_size()["event_ids"] == 12_000 + 4
    assert cost < OPEN_EVENT_BYTES, f"{cost:.0f} bytes per remembered event"


def test_a_closed_order_is_remembered_for_good_in_a_digest():
    cost, fold = per_item(orders_then_close, 4_000, 12_000)
    size = fold.state_size()
    assert size["closed_orders"] == 12_000 and size["open_orders"] == 0
    assert cost < CLOSED_ORDER_BYTES, f"{cost:.0f} bytes per closed order"


def test_a_closed_order_sent_again_is_still_a_duplicate_and_its_refund_still_period_closed():
    """The digests decide what the ids decided: a re-sent order (dated after the close) of a closed one
    is duplicate_order, a refund of a closed order period_closed, and another order folds."""
    a = Alliance("maple-row")
    fold, _ = fold_memory(list(orders_then_close(3)))
    again = a.order("2026-11-02T10:00", "o-oak", "visitor-000001", "OAK-2026-00000001", [(1, 5001, "garden")])
    refund = a.refund("2026-11-02T11:00", "o-oak", "OAK-2026-00000002", 100)
    other_merchant = a.order("2026-11-02T12:00", "n-nori", "visitor-000001", "OAK-2026-00000001",
                             [(1, 5001, "garden")])
    assert fold.apply(again).quarantine == "duplicate_order"
    assert fold.apply(refund).quarantine == "period_closed"
    assert fold.apply(other_merchant).quarantine is None


def test_ids_that_are_not_valid_unicode_are_remembered_like_any_other():
    """An integration calling the fold directly with a lone surrogate in an id (the consumer's readers
    refuse those first): the digests take it, a re-delivery is skipped, and the closed order is found."""
    a = Alliance("maple-row")
    fold, _ = fold_memory(list(members(a)))
    view = a.view("2026-10-03T09:00", "m-maple", "n-nori", "visitor-\ud800", event_id="maple-row-view-\udfff")
    assert fold.apply(view).quarantine is None
    assert fold.apply(view).skipped
    order = a.order("2026-10-04T09:00", "o-oak", "visitor-\ud800", "OAK-\ud800", [(1, 5000, "garden")])
    assert fold.apply(order).quarantine is None
    fold.apply(a.settlement("2026-11-01T00:00", "2026-10-31T23:59:59.999Z", "2026-10"))
    fold.apply(a.close("2026-11-01T00:00:01", "2026-10-31T23:59:59.999Z", "2026-10"))
    assert fold.apply(a.refund("2026-11-02T11:00", "o-oak", "OAK-\ud800", 100)).quarantine == "period_closed"


def test_a_callers_content_digest_of_another_size_still_lets_a_close_forget_the_event():
    """The fold remembers a digest of DIGEST_SIZE bytes, then the time: a caller's digest of another
    size must not shift the time out of reach (the view would then be kept for ever)."""
    a = Alliance("maple-row")
    view = a.view("2026-10-03T09:00", "m-maple", "n-nori", "visitor-1", event_id="maple-row-view-1")
    month_end = [a.settlement("2026-11-01T00:00", "2026-10-31T23:59:59.999Z", "2026-10"),
                 a.close("2026-11-01T00:00:01", "2026-10-31T23:59:59.999Z", "2026-10")]
    remembered = {}
    for digest in (None, b"eight-by"):
        fold, _ = fold_memory(list(members(a)))
        assert fold.apply(view, digest).quarantine is None
        assert fold.apply(view, digest).skipped
        if digest is not None:
            assert fold.apply(view, b"other-8b").quarantine == "conflicting_duplicate"
        for record in month_end:
            fold.apply(record)
        remembered[digest] = fold.state_size()["event_ids"]
    assert remembered[b"eight-by"] == remembered[None] == 2  # the settlement and the close


CLICK_INDEX_BYTES = 160  # a click in the index, beyond remembering its event: about 50 bytes of columns, the
# rest its (merchant, visitor) list and the names (SPEC §9a keeps 90 days of clicks)


def clicks(n: int):
    """A month of clicks: each visitor comes back a few times through each referrer to a merchant."""
    a = Alliance("maple-row")
    yield from members(a)
    for i in range(n):
        referrer, merchant = ("m-maple", "n-nori") if i % 2 else ("n-nori", "o-oak")
        yield a.click(f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}", referrer, merchant,
                      f"visitor-{i % (n // 4):06d}", event_id=f"maple-row-click-{i:08d}")


def test_a_remembered_click_costs_columns_in_the_index_not_objects():
    """A click is remembered as an event (its id's digest, to tell a re-delivery) and in the click
    index that attribution reads: the index keeps columns, not an object per click."""
    click_cost, fold = per_item(clicks, 4_000, 12_000)
    view_cost, _ = per_item(views, 4_000, 12_000)
    assert fold.state_size()["clicks"] == 12_000
    assert click_cost - view_cost < CLICK_INDEX_BYTES, f"{click_cost - view_cost:.0f} bytes per click in the index"


def test_the_closed_orders_digests_are_found_exactly_as_a_set_would_find_them():
    """Every close adds its period's orders; each is found afterwards, and nothing else is."""
    import random

    from refledger.ledger.digests import DigestSet, digest

    rnd = random.Random(11)
    book, expected = DigestSet(), set()
    assert b"" not in book and bytes(16) not in book and len(book) == 0
    for close in range(6):
        period = [digest(f"order-{close}-{i}".encode()) for i in range(rnd.randint(0, 300))]
        book.update(period + period[:3])  # a digest added twice is kept once
        expected.update(period)
        assert len(book) == len(expected) and list(book) == sorted(expected)
    for key in expected:
        assert key in book
    for i in range(2000):
        assert digest(f"never-{i}".encode()) not in book
    assert b"" not in book and bytes(16) not in book and b"\xff" * 16 not in book
    assert list(DigestSet(expected)) == list(book)
    with pytest.raises(ValueError):  # one short digest would shift every other in the buffer
        book.update([b"\x00short"])
    assert len(book) == len(expected) and all(key in book for key in expected)


# what an earning click keeps beyond a click that earns nothing: its subject, its terms and its pending
# amount (about 600 bytes; with its own copies of three names, about 750)
EARNING_CLICK_BYTES = 660


def cpc_clicks_as_unpickled(n: int):
    """Clicks that earn (cpc), each record a copy as the fold process receives it through a pickle:
    every click's shops and visitor are strings of their own."""
    import pickle

    a = Alliance("maple-row")
    yield from members(a)
    yield a.agreement(at="2026-09-01T00:00", agreement_id="per-click", merchant="n-nori", referrer="m-maple",
                      model="cpc", amount_minor=30, currency="CNY", hold=0, effective_from="2026-09-01T00:00")
    for i in range(n):
        click = a.click(f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}", "m-maple", "n-nori",
                        f"visitor-{i % (n // 4):06d}", event_id=f"maple-row-click-{i:08d}")
        yield pickle.loads(pickle.dumps(click))


def test_a_click_that_earns_keeps_no_copies_of_its_shops_and_visitor_names():
    """A cpc click that earns is remembered with what it earns; its key names the shops and visitor
    with the index's own strings, not with the copies each message brought."""
    earning_cost, fold = per_item(cpc_clicks_as_unpickled, 4_000, 12_000)
    plain_cost, _ = per_item(clicks, 4_000, 12_000)
    assert len(fold.clicks.subjects()) > 11_000  # nearly every click earns (24-hour rule aside)
    assert earning_cost - plain_cost < EARNING_CLICK_BYTES, f"{earning_cost - plain_cost:.0f} bytes more per click"
