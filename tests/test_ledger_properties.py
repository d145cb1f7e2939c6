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

from hypothesis import HealthCheck, Phase, assume, event, example, given, settings
from hypothesis import strategies as st

from refledger.ledger.balances import balances
from refledger.ledger.chain import HASHED_FIELDS, canonical_bytes, canonical_values
from refledger.ledger.events import traffic_event
from refledger.ledger.fold import PartitionFold
from refledger.schemas import codec
from tests.ledger_support import Alliance, all_entries, first_broken_link, fold_all, nonzero_rows
from tests.examples import examples

SHOPS = ("s-a", "s-b", "s-c")
VISITORS = ("v1", "v2")
CATEGORIES = ("toys", "care", "food")
HOUR = 3_600_000
T0 = 1_793_491_200_000  # 2026-11-01T00:00Z

SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def iso(ms: int) -> str:
    """Epoch ms as the ISO text the builders take (they turn it back into ms)."""
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


# Event times lean on the rules' bounds: whole days from T0 (so clicks fall exactly 24 h apart and
# orders exactly a window after a click), one millisecond either side of them, and the same
# millisecond twice (ties); the rest anywhere in four days.
BOUNDARY_HOURS = (0, 1, 23, 24, 25, 48, 72, 96)
times = st.one_of(
    st.builds(lambda h, m: T0 + h * HOUR + m, st.sampled_from(BOUNDARY_HOURS), st.sampled_from([0, 0, 0, -1, 1])),
    st.builds(lambda h, m: T0 + h * HOUR + m, st.integers(0, 24 * 4), st.sampled_from([0, 0, 0, 1, 30 * 60_000])),
)
# How long before an order its referring click was made: the same millisecond, a millisecond,
# an hour, or exactly 1–4 days (the default window is 1–4 days: exactly on its bound, or 1 ms past).
LEADS = st.sampled_from([0, 1, HOUR]) | st.builds(lambda d, m: d * 24 * HOUR + m, st.integers(1, 4),
                                                  st.sampled_from([0, 0, 1]))
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
def per_click_agreement(draw, a: Alliance):
    """A cpc or swap agreement for one pair, in effect from before the traffic."""
    model = draw(st.sampled_from(["cpc", "swap"]))
    referrer = draw(st.sampled_from(SHOPS))
    merchant = draw(st.sampled_from([s for s in SHOPS if s != referrer]))
    terms = dict(amount_minor=draw(st.integers(1, 500)), currency="CNY") if model == "cpc" else {}
    return a.agreement(at=iso(T0 - 72 * HOUR), agreement_id="per-click", effective_from=iso(T0 - 48 * HOUR),
                       merchant=merchant, referrer=referrer, model=model, hold=draw(st.integers(0, 6)),
                       event_id="ag-per-click", **terms)


@st.composite
def alliances(draw, refunds_in_full: bool = False):
    """(head, alliance_events, shop_events): memberships first, then agreement and
    status events, then clicks, orders and refunds that are all foldable in any order.

    Most orders have a click that refers them (from another shop, by the same visitor, a
    boundary-leaning lead before the order), most alliances pay some pair per click (cpc or
    swap), and the clicks' times lean on the 24-hour and window bounds."""
    a = Alliance("gen")
    head = [a.member(shop, at=iso(T0 - 1000 * HOUR), event_id=f"m-{shop}") for shop in SHOPS]
    head.append(a.agreement(at=iso(T0 - 1000 * HOUR), effective_from=iso(T0 - 1000 * HOUR), agreement_id="default",
                            rate_bp=draw(st.integers(1, 2000)), window=draw(st.integers(1, 4)),
                            hold=draw(st.integers(0, 6)), event_id="ag-default"))
    alliance_events = [draw(agreements(a, n)) for n in range(draw(st.integers(0, 3)))]
    per_click = None
    if draw(st.integers(0, 9)) < (2 if refunds_in_full else 8):
        per_click = draw(per_click_agreement(a))
        alliance_events.append(per_click)
    for n in range(draw(st.integers(0, 1 if refunds_in_full else 3))):
        alliance_events.append(a.member(draw(st.sampled_from(SHOPS)), at=iso(draw(times) - 12 * HOUR),
                                        status=draw(st.sampled_from(["active", "active", "active", "suspended", "expelled"])),
                                        event_id=f"ms-{n}"))
    shop_events = []

    def click(at, referrer, merchant, visitor):
        shop_events.append(a.click(iso(at), referrer, merchant, visitor, event_id=f"c-{len(shop_events):02d}"))

    if per_click is not None:  # traffic for the pair paid per click
        terms = per_click["agreement"]
        for _ in range(draw(st.integers(1, 3))):
            click(draw(times), terms["referrer_shop_id"], terms["merchant_shop_id"], draw(st.sampled_from(VISITORS)))
    for _ in range(draw(st.integers(0, 10))):
        referrer = draw(st.sampled_from(SHOPS))
        merchant = draw(st.sampled_from([s for s in SHOPS if s != referrer] * 4 + [referrer]))
        click(draw(times), referrer, merchant, draw(st.sampled_from(VISITORS)))
    for _ in range(draw(st.integers(0, 3)) if shop_events else 0):
        # the same visitor, referrer and merchant again: the same millisecond, or 24 h later ± 1 ms
        again = draw(st.sampled_from(shop_events))
        click(again["occurred_at"] + draw(st.sampled_from([0, 24 * HOUR - 1, 24 * HOUR, 24 * HOUR, 24 * HOUR + 1])),
              again["shop_id"], again["click"]["merchant_shop_id"], again["visitor_id"])
    for n in range(draw(st.integers(1, 4))):
        merchant = draw(st.sampled_from(SHOPS))
        visitor = draw(st.sampled_from(VISITORS))
        ordered = draw(times) + 24 * HOUR
        if refunds_in_full and n == 0 or draw(st.integers(0, 9)) < 8:
            leads = st.sampled_from([0, 1, HOUR, 24 * HOUR]) if refunds_in_full and n == 0 else LEADS
            for _ in range(draw(st.integers(1, 2))):
                click(ordered - draw(leads), draw(st.sampled_from([s for s in SHOPS if s != merchant])), merchant,
                      visitor)
        lines = draw(st.lists(st.tuples(st.integers(1, 3), st.integers(1 if n == 0 else 0, 5000),
                                        st.sampled_from(CATEGORIES)), min_size=1, max_size=3))
        order = a.order(iso(ordered), merchant, visitor, f"o{n}", lines, event_id=f"o-{n}")
        shop_events.append(order)
        total = order["order"]["total_minor"]
        if refunds_in_full and n == 0:
            cuts = sorted(set(draw(st.lists(st.integers(1, total - 1), max_size=3)) if total > 1 else []))
            amounts = [b - a_ for a_, b in zip([0] + cuts, cuts + [total])]
        else:
            amounts = draw(st.lists(st.integers(1, max(1, total // 2)), max_size=2)) if total > 1 else []
        for k, amount in enumerate(amounts):
            shop_events.append(a.refund(iso(ordered + draw(st.integers(0, 48)) * HOUR), merchant, f"o{n}", amount,
                                        event_id=f"r-{n}-{k}"))
    return head, alliance_events, shop_events


def attributed_orders(outcomes) -> set[str]:
    """Orders whose latest decision names a referrer."""
    latest = {}
    for o in outcomes:
        for d in o.decisions:
            latest[(d.merchant_shop_id, d.order_id)] = d
    return {f"{m}:{order_id}" for (m, order_id), d in latest.items() if d.attributed}


def paid_clicks(outcomes) -> int:
    """cpc and swap clicks that earn something now."""
    net: dict = {}
    for e in all_entries(outcomes):
        if e.subject.startswith("click:") and e.account in ("earned_pending", "earned_payable", "swap_given"):
            net[e.subject] = net.get(e.subject, 0) + e.amount
    return sum(1 for v in net.values() if v)


def click_times(shop_events) -> list[tuple[int, str, str, str]]:
    return sorted((r["occurred_at"], r["visitor_id"], r["shop_id"], r["click"]["merchant_shop_id"])
                  for r in shop_events if r["type"] == "click")


def has_same_millisecond_clicks(shop_events) -> bool:
    """Two clicks of one visitor to one merchant in the same millisecond (a tie for attribution)."""
    seen = [(t, v, m) for t, v, _r, m in click_times(shop_events)]
    return len(seen) != len(set(seen))


def has_clicks_exactly_a_day_apart(shop_events) -> bool:
    """Two clicks of one (visitor, referrer, merchant) exactly 24 hours apart."""
    chain = {(t, v, r, m) for t, v, r, m in click_times(shop_events)}
    return any((t + 24 * HOUR, v, r, m) in chain for t, v, r, m in chain)


def drawn(strategy, n: int = 80) -> list:
    """n examples of a strategy, the same ones on every run (for checking what it reaches)."""
    found = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        found.append(example)

    collect()
    return found


def test_generated_alliances_reach_the_interesting_cases():
    """The properties below mean something only if the alliances they fold attribute orders, pay
    per click, and put clicks on the rules' bounds; a generator that drifted away from that would
    let every property pass on empty ledgers."""
    # Thresholds sit well below what the generator reaches over many seeds (attributed about
    # 0.7–0.85, paid clicks 0.5–0.75, anything earned 0.85–1, ties about 0.5, days 0.3–0.6,
    # refunded orders attributed 0.75–0.9): far enough for any seed to clear them.
    examples = drawn(alliances(), 150)
    folded = [fold_all(head + alliance_events + shop_events)[1] for head, alliance_events, shop_events in examples]
    share = lambda flags: sum(map(bool, flags)) / len(examples)  # noqa: E731
    assert share(attributed_orders(o) for o in folded) >= 0.55
    assert share(paid_clicks(o) for o in folded) >= 0.4
    assert share(money_rows(o) for o in folded) >= 0.7
    assert share(has_same_millisecond_clicks(e[2]) for e in examples) >= 0.3
    assert share(has_clicks_exactly_a_day_apart(e[2]) for e in examples) >= 0.2
    refunded = drawn(alliances(refunds_in_full=True), 80)
    assert sum(the_refunded_order(shop_events) in attributed_orders(fold_all(head + alliance_events + shop_events)[1])
               for head, alliance_events, shop_events in refunded) >= 0.6 * len(refunded)


def the_refunded_order(shop_events) -> str:
    order = next(r["order"] for r in shop_events if r["type"] == "order" and r["order"]["order_id"] == "o0")
    return f"{order['merchant_shop_id']}:o0"


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
    assume(money_rows(original))  # an alliance where nobody earned anything proves nothing here
    event("orders attributed" if attributed_orders(original) else "no order attributed")
    event("clicks paid (cpc or swap)" if paid_clicks(original) else "no click paid")
    assert money_rows(shuffled) == money_rows(original)
    assert attributed_orders(shuffled) == attributed_orders(original)


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
    assume(money_rows(original))
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
    """o0 is refunded in one to four parts that add up to its total, its refunds and clicks folded
    in any order (parked refunds included): whoever it was attributed to nets zero on it."""
    head, alliance_events, shop_events = log
    rnd.shuffle(shop_events)
    _, outcomes = fold_all(head + alliance_events + shop_events)
    assert_nothing_quarantined(outcomes)
    subject = "order:" + the_refunded_order(shop_events)
    commission = [e for e in all_entries(outcomes) if e.subject == subject and e.role == "commission"
                  and e.account == "earned_pending"]
    assume(any(e.amount for e in commission))  # o0 earned someone something before it was refunded
    event(f"o0 refunded in {sum(r['type'] == 'refund' and r['refund']['order_id'] == 'o0' for r in shop_events)} parts")
    per_shop: dict = {}
    for e in all_entries(outcomes):
        if e.subject == subject:
            per_shop[(e.shop_id, e.currency)] = per_shop.get((e.shop_id, e.currency), 0) + e.amount
    assert per_shop and all(v == 0 for v in per_shop.values()), per_shop


noisy_events = st.sampled_from(["good", "unknown", "negative", "exceeds", "duplicate", "redeliver", "conflict"])


def expected_outcomes(records: list[dict], noise_kind: dict[str, str]) -> list[str]:
    """What each record must end as, from how the log was made, without asking the fold.

    A repeated event id is skipped when identical to its first delivery, else a
    conflicting_duplicate; the first delivery ends by its kind: generated alliance events are
    all foldable (parked refunds count as folded), and each kind of noise has its reason."""
    first: dict[str, dict] = {}
    orders_seen: set[tuple[str, str]] = set()
    out = []
    for record in records:
        event_id = record["event_id"]
        if event_id in first:
            out.append("skipped" if record == first[event_id] else "quarantined:conflicting_duplicate")
            continue
        first[event_id] = record
        kind = noise_kind.get(event_id, "generated")
        if kind == "unknown":
            out.append("quarantined:unknown_shop")
        elif kind == "negative":
            out.append("quarantined:negative_amount")
        elif kind == "exceeds-refund":
            out.append("quarantined:refund_exceeds_order")
        elif record["type"] == "order":
            key = (record["order"]["merchant_shop_id"], record["order"]["order_id"])
            out.append("quarantined:duplicate_order" if key in orders_seen else "folded")
            orders_seen.add(key)
        else:
            out.append("folded")
    return out


def actual_outcomes(records: list[dict], outcomes) -> list[str]:
    """What the fold says each record ended as: one of folded, skipped, quarantined:<reason>."""
    late = {}
    for o in outcomes:
        for event_id, reason in o.late_quarantines:
            assert event_id not in late, f"{event_id} reported late twice"
            late[event_id] = reason
    out = []
    for record, o in zip(records, outcomes):
        flags = [o.skipped, o.quarantine is not None, o.parked]
        assert sum(flags) <= 1, f"{record['event_id']}: skipped, quarantined and parked at once: {o}"
        assert not (o.quarantine and (o.entries or o.decisions)), "a quarantined event changed the ledger"
        assert not (o.skipped and (o.entries or o.decisions)), "a skipped event changed the ledger"
        if o.skipped:
            out.append("skipped")
        elif o.quarantine is not None:
            assert o.detail, "a quarantine says why"
            out.append(f"quarantined:{o.quarantine}")
        elif o.parked and record["event_id"] in late:
            out.append(f"quarantined:{late.pop(record['event_id'])}")
        else:
            out.append("folded")
    assert late == {}, f"late quarantines for events that were not parked: {late}"
    return out


@SETTINGS
@given(alliances(), st.lists(noisy_events, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_every_event_is_folded_skipped_or_quarantined_exactly_once(log, noise, rnd):
    """SPEC §12.6: events read = folded + skipped + quarantined, each event in the class its
    content earns it (checked record by record against how the log was made)."""
    head, alliance_events, shop_events = log
    a = Alliance("gen")
    records = head + alliance_events + shop_events
    kinds: dict[str, str] = {}
    for n, kind in enumerate(noise):
        at = iso(T0 + n * HOUR)
        if kind == "unknown":
            records.append(a.click(at, "s-ghost", "s-a", "v1", event_id=f"x-{n}"))
            kinds[f"x-{n}"] = "unknown"
        elif kind == "negative":
            records.append(a.order(at, "s-a", "v1", f"neg{n}", [(1, -1, "toys")], event_id=f"x-{n}"))
            kinds[f"x-{n}"] = "negative"
        elif kind == "exceeds":
            records.append(a.refund(at, "s-b", "o-never", 10**9, event_id=f"x-{n}"))
            records.append(a.order(at, "s-b", "v2", "o-never", [(1, 10, "toys")], event_id=f"xo-{n}"))
            kinds[f"x-{n}"] = "exceeds-refund"
        elif kind == "duplicate":
            records.append(a.order(at, "s-c", "v3", "dup", [(1, 10, "toys")], event_id=f"x-{n}"))
        elif kind == "redeliver":
            records.append(dict(rnd.choice(records[len(head):] or records)))
        elif kind == "conflict":
            clicks = [r for r in records if r["type"] == "click"]
            if clicks:
                click = rnd.choice(clicks)
                records.append({**click, "occurred_at": click["occurred_at"] + 1})
        else:
            records.append(a.click(at, "s-a", "s-b", "v1", event_id=f"x-{n}"))
    tail = records[len(head):]
    rnd.shuffle(tail)
    records[len(head):] = tail
    _, outcomes = fold_all(records)
    expected = expected_outcomes(records, kinds)
    assert actual_outcomes(records, outcomes) == expected
    counts = {k: sum(1 for e in expected if e.split(":")[0] == k) for k in ("folded", "skipped", "quarantined")}
    assert sum(counts.values()) == len(records)
    event(f"{counts['skipped']} skipped, {counts['quarantined']} quarantined")


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


@settings(max_examples=examples(300), deadline=None)
@given(st.tuples(*[_field(name) for name in HASHED_FIELDS]))
def test_the_fast_canonical_encoding_is_the_documented_one(values):
    assert canonical_values(values) == canonical_bytes(dict(zip(HASHED_FIELDS, values)))


def as_traffic_event(record: dict):
    """A view or click as the consumer hands it to the fold: built from its fields, no record."""
    payload = record[record["type"]]
    return traffic_event(record["type"], record["event_id"], record["occurred_at"], record["shop_id"],
                         record["visitor_id"], payload["referrer_shop_id"], payload["merchant_shop_id"],
                         payload["placement_id"])


@SETTINGS
@given(alliances(), st.lists(noisy_events, max_size=4), st.randoms(use_true_random=False))
def test_views_and_clicks_from_their_fields_decide_exactly_like_records(log, noise, rnd):
    """The consumer folds views and clicks as events built from the fields its reader found
    (`events.traffic_event` into `apply_event`); everything else, and the file ingest, as records
    (`apply`). Both paths must give the same outcomes, entries, decisions and chain."""
    head, alliance_events, shop_events = log
    a = Alliance("gen")
    records = head + alliance_events + shop_events
    records += [a.view(iso(T0 + n * HOUR), "s-a", "s-b", "v1", event_id=f"w-{n}") for n in range(3)]
    records += [a.view(iso(T0), "s-ghost", "s-b", "v1", event_id="w-ghost"),
                a.click(iso(T0), "s-a", "s-b", "v1", event_id="c-mismatch", shop="s-b"),
                a.click(iso(T0), "s-a", "s-ghost", "v1", event_id="c-ghost")]
    records += [dict(rnd.choice(records)) for _ in noise]
    tail = records[len(head):]
    rnd.shuffle(tail)
    records[len(head):] = tail
    from_records, from_fields = PartitionFold(), PartitionFold()
    entries = 0
    for record in records:
        one = from_records.apply(record)
        other = (from_fields.apply_event(as_traffic_event(record)) if record["type"] in ("view", "click")
                 else from_fields.apply(record))
        assert one == other
        entries += len(one.entries)
    assert from_records.chain_head == from_fields.chain_head
    assume(entries)


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
        record["_damaged"] = (key, target[key])
    else:
        del target[key]
        record["_damaged"] = (key, None)
    return record


# SPEC §4's reason codes.
REASONS = {"undecodable", "schema_invalid", "unknown_shop", "shop_mismatch", "negative_amount", "total_mismatch",
           "unknown_currency", "currency_mismatch", "refund_exceeds_order", "conflicting_duplicate",
           "duplicate_order", "retroactive_agreement", "payout_exceeds_payable", "bad_signature",
           "period_closed", "future_close", "personal_data"}
# Damage whose shape only the codec enforces: alliance_id, which the fold does not read; a
# visitor_id on an alliance event, which it ignores; and optional fields left out or null, which
# the fold reads as absent (SPEC §4a: null and absent are the same). The codec requires some of
# them in a record (placement_id, reason, visitor_id on shop events) and fills the defaults of the
# agreement's; the fold takes absent as null, or as the default. A category_rates_bp that is
# empty in any type ([], 0, "", false) is read as {} by the fold.
OPTIONAL_FIELDS = {"visitor_id", "placement_id", "reason", "rate_bp", "amount_minor", "currency",
                   "category_rates_bp", "attribution_window_days", "hold_days"}


def left_to_the_codec(record: dict, damage: tuple[str, object]) -> bool:
    key, value = damage
    if key == "alliance_id" or (key == "visitor_id" and record.get("shop_id") == "alliance"):
        return True
    if key in OPTIONAL_FIELDS and value is None:
        return True
    return key == "category_rates_bp" and not value


def damage_of(record: dict) -> tuple[str, object]:
    """(field, new value or None when removed) of a damaged record (damaged_records marks it)."""
    return record["_damaged"]


def _view_with_event_id(event_id: str) -> dict:
    return {"event_id": event_id, "type": "view", "occurred_at": 1_793_491_200_000, "alliance_id": "gen",
            "shop_id": "s-a", "visitor_id": "v1",
            "view": {"referrer_shop_id": "s-a", "merchant_shop_id": "s-b", "placement_id": "banner"},
            "_damaged": ("event_id", event_id)}


@SETTINGS
@given(damaged_records())
@example(record=_view_with_event_id(""))  # SPEC §2: 1 to 64 characters (once folded by the fold)
@example(record=_view_with_event_id("e" * 65))
def test_damaged_records_are_quarantined_with_a_reason_never_raised_never_folded_silently(record):
    """One field of a good event replaced by any JSON value, or removed. Every source checks the
    record's shape with the codec before the fold; a record the codec rejects is quarantined
    schema_invalid and never folded, and the fold, given it anyway, quarantines it too (unless
    the damage is to a field it does not read): schema_invalid, or the rule the damage breaks
    (an order without lines: total_mismatch). A record the codec accepts (a string replaced by
    another string, say) is folded or quarantined with a SPEC reason and an explanation."""
    damaged = damage_of(record)
    record = {k: v for k, v in record.items() if k != "_damaged"}
    a = Alliance("gen")
    fold, _ = fold_all([a.member(shop) for shop in SHOPS])
    try:
        codec.validate_record(record)
        rejected = None
    except codec.CodecError as exc:
        rejected = exc
    outcome = fold.apply(record)
    assert outcome.quarantine is None or (outcome.quarantine in REASONS and outcome.detail)
    if rejected is not None:
        event("rejected by the codec")
        assert rejected.reason == "schema_invalid" and str(rejected)
        if not left_to_the_codec(record, damaged):
            assert outcome.quarantine is not None, (damaged, outcome)  # mostly schema_invalid
            assert outcome.entries == () and outcome.decisions == ()
    else:
        event("a valid event" + (" quarantined" if outcome.quarantine else " folded"))
        if outcome.quarantine is not None:
            assert outcome.entries == () and outcome.decisions == ()


def test_damaged_records_are_mostly_ones_the_codec_rejects():
    """The damage property is about bad records: most of the generated ones must be bad, and
    most of those damaged in a field the fold reads."""
    examples = drawn(damaged_records(), 200)
    rejected = []
    for record in examples:
        try:
            codec.validate_record({k: v for k, v in record.items() if k != "_damaged"})
        except codec.CodecError:
            rejected.append(record)
    assert len(rejected) >= 0.6 * len(examples)
    assert sum(not left_to_the_codec(r, damage_of(r)) for r in rejected) >= 0.6 * len(rejected)
