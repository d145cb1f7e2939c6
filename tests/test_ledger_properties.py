"""SPEC §12 invariants of the fold, on small generated alliances (hypothesis).

1. every transaction sums to zero per currency/unit; Σ earned = Σ owed per currency
2. folding the same log twice gives identical entries and chain heads
4. permuting a partition's shop events (no settlement among them, none
   quarantined) leaves every balance unchanged — and so does moving the
   alliance's agreement and status events among them (SPEC §8)
5. a refunded-in-full order's net commission is zero
6. every event is folded, skipped or quarantined exactly once by the fold

and two properties of the implementation: the fast lane for views and clicks
decides exactly like the general path, and the fast canonical encoding of an
entry is the documented one.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refledger.ledger.balances import balances
from refledger.ledger.chain import HASHED_FIELDS, canonical_bytes, canonical_values
from refledger.ledger.fold import PartitionFold
from tests.ledger_support import Alliance, all_entries, first_broken_link, fold_all, nonzero_rows

SHOPS = ("s-a", "s-b", "s-c")
VISITORS = ("v1", "v2")
CATEGORIES = ("toys", "care", "food")
HOUR = 3_600_000
T0 = 1_793_491_200_000  # 2026-11-01T00:00Z

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def iso(ms: int) -> str:
    """Epoch ms as the ISO text the builders take (they turn it back into ms)."""
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


times = st.builds(lambda h, m: T0 + h * HOUR + m, st.integers(0, 24 * 4), st.sampled_from([0, 0, 0, 1, 30 * 60_000]))
scopes = st.sampled_from(SHOPS + ("*", "*"))


@st.composite
def agreements(draw, a: Alliance, n: int):
    model = draw(st.sampled_from(["cps", "cps", "cpa", "cpc", "swap", "none"]))
    effective = T0 + draw(st.integers(-48, 24 * 4)) * HOUR
    terms = {}
    if model == "cps":
        terms = dict(rate_bp=draw(st.integers(0, 3000)),
                     category_rates_bp=draw(st.dictionaries(st.sampled_from(CATEGORIES), st.integers(0, 3000),
                                                            max_size=2)))
    elif model in ("cpa", "cpc"):
        terms = dict(amount_minor=draw(st.integers(0, 500)), currency=draw(st.sampled_from(["CNY", "CNY", "USD"])))
    return a.agreement(at=iso(effective - draw(st.integers(0, 48)) * HOUR), agreement_id=f"ag-{n}",
                       version=draw(st.integers(1, 3)), effective_from=iso(effective), merchant=draw(scopes),
                       referrer=draw(scopes), model=model, window=draw(st.integers(0, 6)),
                       hold=draw(st.integers(0, 6)), event_id=f"ag-{n}", **terms)


@st.composite
def alliances(draw, refunds_in_full: bool = False):
    """(head, alliance_events, shop_events): memberships first, then agreement and
    status events, then clicks, orders and refunds that are all foldable in any order."""
    a = Alliance("gen")
    head = [a.member(shop, at=iso(T0 - 1000 * HOUR), event_id=f"m-{shop}") for shop in SHOPS]
    head.append(a.agreement(at=iso(T0 - 1000 * HOUR), effective_from=iso(T0 - 1000 * HOUR), agreement_id="default",
                            rate_bp=draw(st.integers(0, 2000)), window=draw(st.integers(1, 4)),
                            hold=draw(st.integers(0, 6)), event_id="ag-default"))
    alliance_events = [draw(agreements(a, n)) for n in range(draw(st.integers(0, 3)))]
    for n in range(draw(st.integers(0, 3))):
        alliance_events.append(a.member(draw(st.sampled_from(SHOPS)), at=iso(draw(times) - 12 * HOUR),
                                        status=draw(st.sampled_from(["active", "suspended", "expelled"])),
                                        event_id=f"ms-{n}"))
    shop_events = []
    for n in range(draw(st.integers(0, 12))):
        referrer = draw(st.sampled_from(SHOPS))
        merchant = draw(st.sampled_from([s for s in SHOPS if s != referrer] * 4 + [referrer]))
        shop_events.append(a.click(iso(draw(times)), referrer, merchant, draw(st.sampled_from(VISITORS)),
                                   event_id=f"c-{n:02d}"))
    for n in range(draw(st.integers(1 if refunds_in_full else 0, 4))):
        merchant = draw(st.sampled_from(SHOPS))
        lines = draw(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 5000), st.sampled_from(CATEGORIES)),
                              min_size=1, max_size=3))
        order = a.order(iso(draw(times)), merchant, draw(st.sampled_from(VISITORS)), f"o{n}", lines,
                        event_id=f"o-{n}")
        shop_events.append(order)
        total = order["order"]["total_minor"]
        if refunds_in_full and n == 0:
            if total == 0:
                continue
            cuts = sorted(set(draw(st.lists(st.integers(1, total - 1), max_size=3)) if total > 1 else []))
            amounts = [b - a_ for a_, b in zip([0] + cuts, cuts + [total])]
        else:
            amounts = draw(st.lists(st.integers(1, max(1, total // 2)), max_size=2)) if total > 1 else []
        for k, amount in enumerate(amounts):
            shop_events.append(a.refund(iso(draw(times)), merchant, f"o{n}", amount, event_id=f"r-{n}-{k}"))
    return head, alliance_events, shop_events


def money_rows(outcomes):
    return nonzero_rows(balances(all_entries(outcomes)))


def assert_nothing_quarantined(outcomes):
    assert [o.quarantine for o in outcomes if o.quarantine] == []
    assert [q for o in outcomes for q in o.late_quarantines] == []


@SETTINGS
@given(alliances(), st.randoms(use_true_random=False))
def test_permuting_shop_events_leaves_every_balance_unchanged(log, rnd):
    head, alliance_events, shop_events = log
    _, original = fold_all(head + alliance_events + shop_events)
    shuffled_events = shop_events[:]
    rnd.shuffle(shuffled_events)
    _, shuffled = fold_all(head + alliance_events + shuffled_events)
    assert_nothing_quarantined(original)
    assert_nothing_quarantined(shuffled)
    assert money_rows(shuffled) == money_rows(original)


@SETTINGS
@given(alliances(), st.randoms(use_true_random=False))
def test_late_agreements_and_status_events_converge_too(log, rnd):
    head, alliance_events, shop_events = log
    _, original = fold_all(head + alliance_events + shop_events)
    _, all_late = fold_all(head + shop_events + alliance_events)
    mixed = alliance_events + shop_events
    rnd.shuffle(mixed)
    _, shuffled = fold_all(head + mixed)
    assert_nothing_quarantined(shuffled)
    assert money_rows(all_late) == money_rows(original)
    assert money_rows(shuffled) == money_rows(original)


@SETTINGS
@given(alliances(), st.integers(0, 24 * 14))
def test_every_transaction_balances_and_earned_equals_owed(log, settle_hours):
    head, alliance_events, shop_events = log
    a = Alliance("gen")
    tail = [a.settlement(iso(T0 + 24 * 20 * HOUR), iso(T0 + settle_hours * HOUR), event_id="s-1")]
    tail += [a.payout(iso(T0 + 24 * 21 * HOUR), m, r, 1, event_id=f"p-{m}-{r}")
             for m in SHOPS for r in SHOPS if m != r]
    tail.append(a.adjustment(iso(T0), "s-a", "s-b", -7, "correction", event_id="adj-1"))
    _, outcomes = fold_all(head + alliance_events + shop_events + tail)
    entries = all_entries(outcomes)
    per_txn: dict = {}
    for e in entries:
        per_txn[(e.txn_id, e.currency)] = per_txn.get((e.txn_id, e.currency), 0) + e.amount
    assert all(total == 0 for total in per_txn.values())
    assert len({e.entry_id for e in entries}) == len(entries)
    totals: dict = {}
    for row in balances(entries):
        t = totals.setdefault(row["currency"], [0, 0, 0, 0])
        if row["currency"] == "CLICK":
            t[0] += row["swap_given"]
            t[1] += row["swap_received"]
        else:
            t[0] += row["earned_pending"] + row["earned_payable"]
            t[1] += row["owed_pending"] + row["owed_payable"]
            t[2] += row["received"]
            t[3] += row["paid_out"]
    for earned, owed, received, paid in totals.values():
        assert earned == owed and received == paid
    assert first_broken_link(entries) is None


@SETTINGS
@given(alliances())
def test_folding_the_same_log_twice_gives_identical_entries_and_chain_head(log):
    records = [r for part in log for r in part]
    first, first_outcomes = fold_all(records)
    second, second_outcomes = fold_all(records)
    assert [e.to_dict() for e in all_entries(first_outcomes)] == [e.to_dict() for e in all_entries(second_outcomes)]
    assert first.chain_head == second.chain_head
    assert [o.decisions for o in first_outcomes] == [o.decisions for o in second_outcomes]


@SETTINGS
@given(alliances(refunds_in_full=True), st.randoms(use_true_random=False))
def test_an_order_refunded_in_full_nets_to_zero(log, rnd):
    head, alliance_events, shop_events = log
    rnd.shuffle(shop_events)
    _, outcomes = fold_all(head + alliance_events + shop_events)
    order = next((r for r in shop_events if r["type"] == "order" and r["order"]["order_id"] == "o0"), None)
    if order is None or order["order"]["total_minor"] == 0:
        return
    subject = f"order:{order['order']['merchant_shop_id']}:o0"
    per_shop: dict = {}
    for e in all_entries(outcomes):
        if e.subject == subject:
            per_shop[(e.shop_id, e.currency)] = per_shop.get((e.shop_id, e.currency), 0) + e.amount
    assert all(v == 0 for v in per_shop.values())


noisy_events = st.sampled_from(["good", "unknown", "negative", "exceeds", "duplicate", "redeliver", "conflict"])


@SETTINGS
@given(alliances(), st.lists(noisy_events, max_size=6), st.randoms(use_true_random=False))
def test_every_event_is_folded_skipped_or_quarantined_exactly_once(log, noise, rnd):
    head, alliance_events, shop_events = log
    a = Alliance("gen")
    records = head + alliance_events + shop_events
    for n, kind in enumerate(noise):
        at = iso(T0 + n * HOUR)
        if kind == "unknown":
            records.append(a.click(at, "s-ghost", "s-a", "v1", event_id=f"x-{n}"))
        elif kind == "negative":
            records.append(a.order(at, "s-a", "v1", f"neg{n}", [(1, -1, "toys")], event_id=f"x-{n}"))
        elif kind == "exceeds":
            records.append(a.refund(at, "s-b", "o-never", 10**9, event_id=f"x-{n}"))
            records.append(a.order(at, "s-b", "v2", "o-never", [(1, 10, "toys")], event_id=f"xo-{n}"))
        elif kind == "duplicate":
            records.append(a.order(at, "s-c", "v3", "dup", [(1, 10, "toys")], event_id=f"x-{n}"))
        elif kind in ("redeliver", "conflict") and records:
            again = dict(rnd.choice(records))
            if kind == "conflict":
                again["occurred_at"] += 1
            records.append(again)
        else:
            records.append(a.click(at, "s-a", "s-b", "v1", event_id=f"x-{n}"))
    rnd.shuffle(records[len(head):])
    _, outcomes = fold_all(records)
    late = {event_id for o in outcomes for event_id, _reason in o.late_quarantines}
    counts = {"folded": 0, "skipped": 0, "quarantined": 0}
    for record, outcome in zip(records, outcomes):
        if outcome.skipped:
            counts["skipped"] += 1
        elif outcome.quarantine is not None:
            counts["quarantined"] += 1
        elif record["event_id"] in late:
            assert outcome.parked
            counts["quarantined"] += 1
        else:
            counts["folded"] += 1
    assert sum(counts.values()) == len(records)
    assert len(late) == sum(len(o.late_quarantines) for o in outcomes)


INT_FIELDS = {"seq", "amount"}
OPTIONAL_INT_FIELDS = {"agreement_version", "rate_bp"}
OPTIONAL_STR_FIELDS = {"agreement_id", "model", "click_event_id", "refund_id", "reason"}


def _field(name):
    text = st.text(max_size=12)
    if name in INT_FIELDS:
        return st.integers(-10**15, 10**15)
    if name in OPTIONAL_INT_FIELDS:
        return st.none() | st.integers(-10**6, 10**6)
    if name in OPTIONAL_STR_FIELDS:
        return st.none() | text
    return text


@settings(max_examples=300, deadline=None)
@given(st.tuples(*[_field(name) for name in HASHED_FIELDS]))
def test_the_fast_canonical_encoding_is_the_documented_one(values):
    assert canonical_values(values) == canonical_bytes(dict(zip(HASHED_FIELDS, values)))


class GeneralPathFold(PartitionFold):
    """The fold without its fast lane for views and clicks."""

    def _fast_traffic(self, record, kind):
        return None


@SETTINGS
@given(alliances(), st.lists(noisy_events, max_size=4), st.randoms(use_true_random=False))
def test_the_fast_lane_for_views_and_clicks_decides_exactly_like_the_general_path(log, noise, rnd):
    head, alliance_events, shop_events = log
    a = Alliance("gen")
    records = head + alliance_events + shop_events
    records += [a.view(iso(T0 + n * HOUR), "s-a", "s-b", "v1", event_id=f"w-{n}") for n in range(3)]
    records += [a.view(iso(T0), "s-ghost", "s-b", "v1", event_id="w-ghost"),
                a.click(iso(T0), "s-a", "s-b", "v1", event_id="c-mismatch", shop="s-b"),
                a.click(iso(T0), "s-a", "s-ghost", "v1", event_id="c-ghost")]
    records += [dict(rnd.choice(records)) for _ in noise]
    rnd.shuffle(records[len(head):])
    fast, general = PartitionFold(), GeneralPathFold()
    for record in records:
        one, other = fast.apply(record), general.apply(record)
        assert (one.quarantine, one.skipped, one.parked, one.late_quarantines) == \
            (other.quarantine, other.skipped, other.parked, other.late_quarantines)
        assert one.entries == other.entries and one.decisions == other.decisions
    assert fast.chain_head == general.chain_head


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@st.composite
def damaged_records(draw):
    """A well-formed record of any type with one field replaced by anything at all."""
    a = Alliance("gen")
    record = draw(st.sampled_from([
        a.view(iso(T0), "s-a", "s-b", "v1", event_id="d-1"),
        a.click(iso(T0), "s-a", "s-b", "v1", event_id="d-1"),
        a.order(iso(T0), "s-b", "v1", "o-d", [(1, 100, "toys")], event_id="d-1"),
        a.refund(iso(T0), "s-b", "o-d", 10, event_id="d-1"),
        a.member("s-a", event_id="d-1"),
        a.agreement(agreement_id="d", rate_bp=100, event_id="d-1"),
        a.settlement(iso(T0), iso(T0), event_id="d-1"),
        a.payout(iso(T0), "s-b", "s-a", 1, event_id="d-1"),
        a.adjustment(iso(T0), "s-b", "s-a", 1, "r", event_id="d-1"),
    ]))
    record = {**record, record["type"]: dict(record[record["type"]])}
    target = record if draw(st.booleans()) else record[record["type"]]
    key = draw(st.sampled_from(sorted(target)))
    if draw(st.booleans()):
        target[key] = draw(json_values)
    else:
        del target[key]
    return record


@SETTINGS
@given(damaged_records())
def test_damaged_records_are_quarantined_or_folded_never_raised(record):
    a = Alliance("gen")
    fold, _ = fold_all([a.member(shop) for shop in SHOPS])
    outcome = fold.apply(record)
    assert outcome.quarantine is None or isinstance(outcome.quarantine, str)
