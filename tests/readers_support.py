"""Every reader of event bytes asked the same question, and where their answers differ.

The readers: the codec's ``decode`` (the reference), ``decode_canonical``, the
fixed-layout readers of ``schemas.traffic`` (``read_traffic_fields``,
``read_traffic``, ``read_purchase``: each may decline with None, leaving the
answer to the codec), and the consumer's decode step (``consumers.batch``:
what becomes a stored event and a fold item, or a quarantine row), as Kafka
records and as messages from files. ``disagreements(data)`` lists every way
one of them answers otherwise than the codec, or raises anything but the
codec's errors; an empty list means they all agree.

Used by the exhaustive bit-flip tests, the fuzzing smoke test and
``bench/fuzz.py``.
"""

from __future__ import annotations

from refledger.consumers.batch import LogProcessor, PendingBatch
from refledger.ledger.events import parse_event
from refledger.ledger.fold import PartitionFold
from refledger.schemas import binary, codec
from refledger.schemas.codec import CURRENT_FINGERPRINT, SCHEMA_VERSIONS, CodecError
from refledger.schemas.messages import AVRO, Message
from refledger.schemas.personal_data import personal_fields
from refledger.schemas.traffic import read_purchase, read_traffic, read_traffic_fields
from refledger.store.ledger_file import BatchWrite, LedgerStore

from tests.codec_support import encode_unchecked

MEMBER_KEY = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
SIGNATURE = "c2lnbmF0dXJlIG92ZXIgdGhlIEpDUyBmb3JtIG9mIHRoZSBldmVudCwgNjQgYnl0ZXMgbG9uZyBhbmQgYmFzZTY0IG9mIGl0IC4uLg=="


def _shop_event(kind: str, event_id: str, at: int, shop: str, payload: dict, **extra) -> dict:
    return {"event_id": event_id, "type": kind, "occurred_at": at, "alliance_id": "baby-care", "shop_id": shop,
            "visitor_id": "v-7f3a", kind: payload, **extra}


def _alliance_event(kind: str, event_id: str, at: int, payload: dict, **extra) -> dict:
    return {"event_id": event_id, "type": kind, "occurred_at": at, "alliance_id": "baby-care",
            "shop_id": "alliance", "visitor_id": None, kind: payload, **extra}


NOV_1 = 1793491200000
TRAFFIC = {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "article-12"}

# One valid event of every type, and of the shapes the fixed-layout readers treat apart (a
# signature, two-byte string lengths, several order lines, a map of category rates), in the
# current schema's record form. Older versions write what their schema has of them.
SAMPLES: dict[str, dict] = {
    "view": _shop_event("view", "w-1", NOV_1 + 1000, "li-kids", TRAFFIC),
    "click": _shop_event("click", "c-1", NOV_1 + 2000, "li-kids", TRAFFIC),
    "click-signed": _shop_event("click", "c-2", NOV_1 + 3000, "li-kids", TRAFFIC, signature=SIGNATURE),
    "click-long": _shop_event("click", "c-" + "9" * 62, NOV_1 + 4000, "li-kids",
                              {**TRAFFIC, "placement_id": "article-" + "x" * 70}),
    "order": _shop_event("order", "o-1", NOV_1 + 5000, "wang-bath", {
        "order_id": "o1", "merchant_shop_id": "wang-bath", "currency": "CNY",
        "lines": [{"sku": "bath-gel", "category": "care", "quantity": 2, "unit_price_minor": 4950},
                  {"sku": "lotion", "category": "toys", "quantity": 1, "unit_price_minor": 3333}],
        "total_minor": 13233}),
    "refund": _shop_event("refund", "r-1", NOV_1 + 6000, "wang-bath", {
        "order_id": "o1", "refund_id": "r1", "merchant_shop_id": "wang-bath", "currency": "CNY",
        "amount_minor": 3333}, signature=SIGNATURE),
    "member": _alliance_event("member", "m-1", NOV_1 - 1000, {
        "member_shop_id": "li-kids", "status": "active", "public_key": MEMBER_KEY}),
    "agreement-cps": _alliance_event("agreement", "a-1", NOV_1 - 500, {
        "agreement_id": "default", "version": 1, "effective_from": NOV_1, "merchant_shop_id": "*",
        "referrer_shop_id": "*", "model": "cps", "rate_bp": 800, "category_rates_bp": {"care": 700, "toys": 1000},
        "amount_minor": None, "currency": None, "attribution_window_days": 15, "hold_days": 15}),
    "agreement-cpc": _alliance_event("agreement", "a-2", NOV_1 - 400, {
        "agreement_id": "per-click", "version": 2, "effective_from": NOV_1, "merchant_shop_id": "wang-bath",
        "referrer_shop_id": "li-kids", "model": "cpc", "rate_bp": None, "category_rates_bp": {},
        "amount_minor": 30, "currency": "CNY", "attribution_window_days": 7, "hold_days": 0}),
    "settlement": _alliance_event("settlement", "s-1", NOV_1 + 30 * 86_400_000, {
        "settlement_id": "2026-11", "period_end": NOV_1 + 29 * 86_400_000}),
    "payout": _alliance_event("payout", "p-1", NOV_1 + 31 * 86_400_000, {
        "payout_id": "pay-1", "merchant_shop_id": "wang-bath", "referrer_shop_id": "li-kids", "currency": "CNY",
        "amount_minor": 500}),
    "adjustment": _alliance_event("adjustment", "j-1", NOV_1 + 32 * 86_400_000, {
        "adjustment_id": "fine-1", "merchant_shop_id": "wang-bath", "referrer_shop_id": "alliance",
        "currency": "CNY", "amount_minor": -500, "reason": "late delivery fine"}),
    "close": _alliance_event("close", "x-1", NOV_1 + 33 * 86_400_000, {
        "close_id": "through-10", "closed_through": NOV_1 - 1}),
    "policy": _alliance_event("policy", "y-1", NOV_1 - 2000, {
        "policy_id": "signed", "require_signatures": True, "operator_public_key": MEMBER_KEY}),
}


def _version_types(version) -> set[str]:
    schema = version.schema()
    event_type = next(f for f in schema["fields"] if f["name"] == "type")["type"]
    return set(event_type["symbols"])


def sample_messages() -> list[tuple[str, bytes]]:
    """(name, single-object message) of every sample in every schema version that has its type."""
    out = []
    for version in SCHEMA_VERSIONS:
        for name, record in SAMPLES.items():
            if record["type"] in _version_types(version):
                out.append((f"{version.name}-{name}", encode_unchecked(record, version)))
    return out


def bit_flips(data: bytes):
    """The message with each one of its bits flipped, one at a time: (bit index, damaged bytes)."""
    raw = bytearray(data)
    for at in range(len(raw)):
        for bit in range(8):
            raw[at] ^= 1 << bit
            yield at * 8 + bit, bytes(raw)
            raw[at] ^= 1 << bit


def truncations(data: bytes):
    """The message cut short at every length from empty to one byte short."""
    for length in range(len(data)):
        yield length, data[:length]


def unsigned_length_string(data: bytes, i: int) -> tuple[str, int]:
    """A broken ``binary.read_string`` for tests to plant in a fast reader: a one-byte length read
    without its sign (its low bit), as the fast reader once read ``event_id``."""
    if data[i] < 0x80:
        start, end = i + 1, i + 1 + (data[i] >> 1)
        return data[start:end].decode("utf-8"), end
    return binary.read_string(data, i)


# ---------------------------------------------------------------- the readers' answers


def codec_answer(data: bytes):
    """The reference: the record, or the class of the codec's error."""
    try:
        return codec.decode(data)
    except CodecError as error:
        return type(error)


_CONSUMER: list[LogProcessor] = []


def _consumer() -> LogProcessor:
    """A consumer over an in-memory ledger, for its decode step (which reads nothing stored)."""
    if not _CONSUMER:
        _CONSUMER.append(LogProcessor(LedgerStore(":memory:"), PartitionFold, source="test"))
    return _CONSUMER[0]


def _consumer_step(data: bytes, kafka_records: bool):
    """What the consumer's decode step makes of the message: (reason, None) when it quarantines
    it, else (the fold item, the stored event row)."""
    pending = PendingBatch(BatchWrite(source="test"))
    message = Message("t", 0, 7, data, AVRO, None, "" if kafka_records else "file.avro#8")
    consumer = _consumer()
    items = consumer.decode_messages([message], pending, kafka_records)
    consumer.signatures.verify()  # as `process` does: every verdict in before the item is read
    rows = pending.write.events
    if not items:
        assert not rows and pending.write.quarantined == 1
        return pending.write.quarantine["reason"][0], None
    assert len(items) == 1 and len(rows) == 1 and pending.write.quarantined == 0
    return items[0], rows[0]


def _row_of(record: dict) -> tuple:
    payload = record[record["type"]]
    return (record["event_id"], record["type"], record["occurred_at"], record["shop_id"], record["visitor_id"],
            payload.get("merchant_shop_id"), payload.get("referrer_shop_id"), payload.get("order_id"),
            payload.get("refund_id"), payload.get("amount_minor", payload.get("total_minor")),
            payload.get("currency"))


def _fields_of(record: dict) -> tuple:
    payload = record[record["type"]]
    return (record["type"], record["event_id"], record["occurred_at"], record["alliance_id"], record["shop_id"],
            record["visitor_id"], payload["referrer_shop_id"], payload["merchant_shop_id"],
            payload["placement_id"], record.get("signature"))


def _check(found: list[str], reader: str, call, judge) -> None:
    try:
        answer = call()
    except CodecError as error:
        answer = type(error)
    except Exception as error:  # noqa: BLE001 - anything else escaping a reader is the finding
        found.append(f"{reader} raised {type(error).__name__}: {error}")
        return
    problem = judge(answer)
    if problem:
        found.append(f"{reader}: {problem}")


def _same(expected):
    def judge(answer):
        if answer == expected and type(answer) is type(expected):
            if isinstance(expected, dict) and list(answer) != list(expected):
                return "same record, other key order"
            return None
        return f"answered {_short(answer)}, the codec {_short(expected)}"
    return judge


def _declined_or(expected, wanted: tuple[str, ...], shape=lambda record: record):
    """A fast reader's judge: it may decline (None); it may read only a record of the ``wanted``
    types, and then exactly the codec's (in ``shape``)."""
    def judge(answer):
        if answer is None:
            return None
        if not isinstance(expected, dict):
            return f"read {_short(answer)} where the codec raises {expected.__name__}"
        if expected["type"] not in wanted:
            return f"read {_short(answer)}, a {expected['type']} it should decline"
        return _same(shape(expected))(answer)
    return judge


def _short(answer) -> str:
    if isinstance(answer, type):
        return answer.__name__
    text = repr(answer)
    return text if len(text) < 300 else text[:300] + "…"


def disagreements(data: bytes) -> list[str]:
    """Every way a reader answers ``data`` otherwise than ``codec.decode`` (empty: all agree)."""
    found: list[str] = []
    try:
        expected = codec_answer(data)
    except Exception as error:  # noqa: BLE001
        return [f"codec.decode raised {type(error).__name__}: {error}"]
    is_record = isinstance(expected, dict)

    def canonical_judge(answer):
        if isinstance(answer, type) or not is_record:
            return _same(expected)(answer)
        record, stored = answer
        problem = _same(expected)(record)
        if problem:
            return problem
        if codec_answer(stored) != expected:
            return f"its canonical message reads back as {_short(codec_answer(stored))}"
        return None

    _check(found, "decode_canonical", lambda: codec.decode_canonical(data), canonical_judge)
    _check(found, "read_traffic_fields", lambda: read_traffic_fields(data, CURRENT_FINGERPRINT),
           _declined_or(expected, ("view", "click"), _fields_of))
    _check(found, "read_traffic", lambda: read_traffic(data, CURRENT_FINGERPRINT),
           _declined_or(expected, ("view", "click")))
    _check(found, "read_purchase", lambda: read_purchase(data, CURRENT_FINGERPRINT),
           _declined_or(expected, ("order", "refund")))
    for kafka_records in (True, False):
        reader = "consumer (Kafka records)" if kafka_records else "consumer (file messages)"
        _check(found, reader, lambda: _consumer_step(data, kafka_records), _consumer_judge(expected))
    return found


def _consumer_judge(expected):
    """The consumer's decode step answers as the codec does, except that a record holding personal
    data is quarantined ``personal_data`` right after its shape (SPEC §4, §4b)."""
    personal = isinstance(expected, dict) and bool(personal_fields(expected))

    def judge(answer):
        item, row = answer
        if row is None:
            if personal:
                return None if item == "personal_data" else f"quarantined it {item}, not personal_data"
            if isinstance(expected, dict):
                return f"quarantined it {item} where the codec reads {_short(expected)}"
            return None if item == expected.reason else f"quarantined it {item}, the codec {expected.reason}"
        if not isinstance(expected, dict):
            return f"stored an event where the codec raises {expected.__name__}"
        if personal:
            return f"stored an event holding personal data in {', '.join(personal_fields(expected))}"
        folded = item.event if item.record is None else parse_event(item.record)
        if folded != parse_event(expected):
            return f"folds {_short(folded)}, the codec's record is {_short(expected)}"
        if item.record is not None and item.record != expected:
            return f"hands the fold {_short(item.record)}, the codec reads {_short(expected)}"
        stored = (row.event_id, row.type, row.occurred_at, row.shop_id, row.visitor_id, row.merchant_shop_id,
                  row.referrer_shop_id, row.order_id, row.refund_id, row.amount_minor, row.currency)
        if stored != _row_of(expected):
            return f"stores the row {stored}, the codec's record gives {_row_of(expected)}"
        again = codec_answer(row.avro)
        if again != expected:
            return f"stores bytes that read back as {_short(again)}"
        return None
    return judge
