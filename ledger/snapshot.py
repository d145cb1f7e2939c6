"""A partition fold's whole state as plain rows, and back (SPEC §9a, §12.8).

A consumer restarted on a long history loads its partitions' latest
snapshot and folds only the events after it. ``export_state(fold)`` gives
the state as rows of plain values (str, int, bool, None, bytes) per kind,
each kind a fixed tuple of columns (``KINDS``), in a stable order;
``restore_state(rows)`` builds a fold that behaves exactly like the one
exported: same entries, same ids, same chain, whatever comes next (a test
folds a log from the start and from a snapshot taken anywhere in it and
compares every entry). The rows are turned into a safe, versioned file
format (Arrow) outside the fold; nothing here is pickled.

Subjects (orders and cpc/swap clicks that earn) are exported once each and
referred to by id, because a subject is shared: an order's subject is both
in the order book and, while it has something pending, in the postings.
"""

from __future__ import annotations

from refledger.ledger.agreements import AgreementBook
from refledger.ledger.attribution import ClickRef
from refledger.ledger.events import Agreement, Order, Refund
from refledger.ledger.orders import OrderSubject
from refledger.ledger.subjects import Subject, Terms

# the layout of the rows below; a snapshot of another layout is not loaded (the fold is rebuilt
# from the events instead). 5: click subjects named by id and time, agreement rates by version;
# 3: closed orders and remembered event ids as digests; 2: signing.
FORMAT = 5

_TERMS = ("t_referrer", "t_merchant", "t_currency", "t_commission", "t_agreement_id", "t_agreement_version",
          "t_agreement_event_id", "t_model", "t_rate_bp", "t_click_event_id", "t_hold_days")

KINDS: dict[str, tuple[str, ...]] = {
    "fold": ("format", "closed_through", "journal_head", "journal_seq", "parked_seq"),
    "members": ("shop_id", "occurred_at", "event_id", "status"),
    "agreements": ("event_id", "occurred_at", "shop_id", "agreement_id", "version", "effective_from",
                   "merchant_shop_id", "referrer_shop_id", "model", "rate_bp", "amount_minor", "currency",
                   "attribution_window_days", "hold_days"),
    # a version's category rates, by its event id and time (an id may come back after a close, SPEC §9a)
    "agreement_rates": ("event_id", "occurred_at", "version", "category", "rate_bp"),
    # every subject: where it lives (an open order, a remembered click, or only its pending amount)
    "subjects": ("subject_id", "book", "occurred_at", "net", "settled", "pending") + _TERMS,
    "subject_rates": ("subject_id", "category", "rate_bp"),
    "orders": ("subject_id", "event_id", "occurred_at", "shop_id", "visitor_id", "order_id", "merchant_shop_id",
               "currency", "total_minor", "refunded", "applied"),
    "order_lines": ("subject_id", "line", "sku", "category", "quantity", "unit_price_minor"),
    "closed_orders": ("order_digest",),
    "parked_refunds": ("seq", "event_id", "occurred_at", "shop_id", "visitor_id", "order_id", "refund_id",
                       "merchant_shop_id", "currency", "amount_minor"),
    "clicks": ("occurred_at", "event_id", "referrer_shop_id", "merchant_shop_id", "visitor_id", "valid"),
    "payable": ("merchant_shop_id", "referrer_shop_id", "currency", "amount"),
    "seen": ("id_digest", "occurred_at", "content"),
    # SPEC §4a: the signing policy in force (one row), and every key a shop may sign with
    "signing": ("require_signatures", "operator_public_key", "policy_id"),
    "signing_keys": ("shop_id", "public_key", "dated_before"),
}


class SnapshotError(ValueError):
    """Rows that are not a snapshot this fold can load."""


def _terms_row(terms: Terms | None) -> tuple:
    if terms is None:
        return (None,) * len(_TERMS)
    return (terms.referrer_shop_id, terms.merchant_shop_id, terms.currency, terms.commission, terms.agreement_id,
            terms.agreement_version, terms.agreement_event_id, terms.model, terms.rate_bp, terms.click_event_id,
            terms.hold_days)


def export_state(fold) -> dict[str, list[tuple]]:
    """The fold's state as rows per kind (see ``KINDS``), in a stable order."""
    orders, clicks, postings, journal = fold.orders, fold.clicks, fold.postings, fold.journal
    rows: dict[str, list[tuple]] = {kind: [] for kind in KINDS}
    rows["fold"].append((FORMAT, fold.closed_through, journal.head, journal.seq, orders.parked_seq))
    rows["members"].extend(fold.membership.rows())
    for a in fold.agreements.versions():
        rows["agreements"].append((a.event_id, a.occurred_at, a.shop_id, a.agreement_id, a.version, a.effective_from,
                                   a.merchant_shop_id, a.referrer_shop_id, a.model, a.rate_bp, a.amount_minor,
                                   a.currency, a.attribution_window_days, a.hold_days))
        rows["agreement_rates"].extend((a.event_id, a.occurred_at, a.version, category, rate)
                                       for category, rate in a.category_rates_bp)
    # every subject once, in the order of its name (names are unique: a click's holds its time, SPEC §9a;
    # only orders have category rates)
    subjects: dict[Subject, str | None] = {}
    for subject in orders.open_subjects():
        subjects[subject] = "order"
    for subject in clicks.subjects():
        subjects[subject] = "click"
    pending = postings.pending_subjects()
    for subject in pending:
        subjects.setdefault(subject, None)
    pending = set(pending)
    for subject in sorted(subjects, key=lambda s: (s.subject_id, s.occurred_at)):
        subject_id = subject.subject_id
        rows["subjects"].append((subject_id, subjects[subject], subject.occurred_at, subject.net, subject.settled,
                                 subject in pending) + _terms_row(subject.terms))
        if subject.terms is not None:
            rows["subject_rates"].extend((subject_id, c, r) for c, r in subject.terms.category_rates_bp)
    for subject in sorted(orders.open_subjects(), key=lambda s: s.subject_id):
        o = subject.order
        rows["orders"].append((subject.subject_id, o.event_id, o.occurred_at, o.shop_id, o.visitor_id, o.order_id,
                               o.merchant_shop_id, o.currency, o.total_minor, subject.refunded, subject.applied))
        rows["order_lines"].extend((subject.subject_id, i, *line) for i, line in enumerate(o.lines))
    rows["closed_orders"].extend((key,) for key in sorted(orders.closed))
    for seq, r in orders.parked_rows():
        rows["parked_refunds"].append((seq, r.event_id, r.occurred_at, r.shop_id, r.visitor_id, r.order_id,
                                       r.refund_id, r.merchant_shop_id, r.currency, r.amount_minor))
    rows["clicks"].extend((*click, valid) for click, valid in clicks.rows())
    rows["payable"].extend((m, r, c, amount) for (m, r, c), amount in sorted(journal.payable_rows()))
    rows["seen"].extend(fold.seen_rows())
    rows["signing"].append(fold.signers.policy_row())
    rows["signing_keys"].extend(fold.signers.key_rows())
    return rows


def _terms(values: tuple, rates: tuple) -> Terms | None:
    if values[0] is None:
        return None
    (referrer, merchant, currency, commission, agreement_id, version, agreement_event_id, model, rate_bp,
     click_event_id, hold_days) = values
    return Terms(referrer, merchant, currency, commission, agreement_id, version, agreement_event_id, model,
                 rate_bp, rates, click_event_id, hold_days)


def _grouped(rows, key_index: int = 0) -> dict:
    out: dict = {}
    for row in rows:
        out.setdefault(row[key_index], []).append(row)
    return out


def restore_state(fold, rows: dict[str, list[tuple]]) -> None:
    """Load exported rows into a new, empty fold (``PartitionFold()``)."""
    missing = set(KINDS) - set(rows)
    if missing or len(rows["fold"]) != 1:
        raise SnapshotError(f"not a fold snapshot: missing {sorted(missing) or 'its fold row'}")
    version, closed_through, head, seq, parked_seq = rows["fold"][0]
    if version != FORMAT:
        raise SnapshotError(f"a snapshot of layout {version}; this fold loads layout {FORMAT}")
    fold.closed_through = closed_through
    fold.journal.head, fold.journal.seq = head, seq
    fold.membership.restore(rows["members"])
    rates: dict[tuple, list[tuple[str, int]]] = {}
    for event_id, at, version_, category, rate in rows["agreement_rates"]:
        rates.setdefault((event_id, at, version_), []).append((category, rate))
    book = AgreementBook()
    for row in rows["agreements"]:
        (event_id, at, shop, agreement_id, version_, effective_from, merchant, referrer, model, rate_bp, amount,
         currency, window, hold) = row
        book.add(Agreement(event_id, at, shop, agreement_id, version_, effective_from, merchant, referrer, model,
                           rate_bp, tuple(rates.get((event_id, at, version_), ())), amount, currency,
                           window, hold))
    fold.agreements = book
    subject_rates = _grouped(rows["subject_rates"])
    lines = _grouped(rows["order_lines"])
    orders = {row[0]: row for row in rows["orders"]}
    click_subjects: dict[str, Subject] = {}
    order_subjects: list[OrderSubject] = []
    for row in rows["subjects"]:
        subject_id, where, at, net, settled, pending = row[:6]
        terms = _terms(row[6:], tuple((c, r) for _s, c, r in subject_rates.get(subject_id, ())))
        if where == "order":
            (_s, event_id, o_at, shop, visitor, order_id, merchant, currency, total, refunded, applied) = orders[
                subject_id]
            order = Order(event_id, o_at, shop, visitor, order_id, merchant, currency,
                          tuple(tuple(line[2:]) for line in sorted(lines.get(subject_id, ()), key=lambda r: r[1])),
                          total)
            subject = OrderSubject(order)
            subject.refunded, subject.applied = refunded, applied
            order_subjects.append(subject)
        else:
            subject = Subject(subject_id, at)
            if where == "click":
                click_subjects[subject_id] = subject
        subject.terms, subject.net, subject.settled = terms, net, settled
        if pending:
            fold.postings.track(subject)
    fold.orders.restore(sorted(order_subjects, key=lambda s: (s.occurred_at, s.subject_id)),
                        [key for (key,) in rows["closed_orders"]],
                        [(row[0], Refund(*row[1:])) for row in rows["parked_refunds"]], parked_seq)
    fold.clicks.restore([(ClickRef(at, event_id, referrer, merchant, visitor), valid)
                         for at, event_id, referrer, merchant, visitor, valid in rows["clicks"]],
                        click_subjects, closed_through)
    fold.journal.restore_payable(rows["payable"])
    fold.restore_seen(rows["seen"])
    if len(rows["signing"]) != 1:
        raise SnapshotError("not a fold snapshot: no signing policy row")
    fold.signers.restore(rows["signing"][0], rows["signing_keys"])
