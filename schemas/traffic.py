"""Readers for the bulk of the traffic: shop events in the current schema.

Views and clicks are nine events in ten, orders and refunds nearly all the
rest. Their single-object messages, when written with the current schema,
have a fixed layout: the envelope's fields, one non-null payload branch, null
branches and the optional signature. Reading that layout directly is three
(views, clicks) to six (orders, refunds) times faster than the general
resolving decoder, and the consumer spends most of its time decoding.

``read_traffic(data)`` returns exactly the record ``codec.decode(data)``
returns (``read_traffic_fields`` the same as a flat tuple, which the
consumer takes as it is), or None whenever the message is anything else or
anything is unusual (another fingerprint or type, a shape rule broken, bad
UTF-8, trailing bytes): the caller then takes the general path, which decodes
or rejects it with the right reason. ``read_purchase(data)`` does the same
for orders and refunds. Tests hold the readers to the codec's answers on
every single-bit flip and every truncation of a message of every type
(`tests/test_readers_agree.py`), and on random events.

Compiled (refledger/compiled.py), ``traffic.pxd`` types ``data`` as ``bytes``
and the index as a C integer, which makes each byte read a C read. Every caller
passes bytes only (each checks ``type(data) is bytes``). The reads of
`refledger.schemas.binary` stay calls through this module's names, so a test
can plant a broken one.
"""

from __future__ import annotations

from refledger.schemas.binary import read_int, read_long, read_string
from refledger.schemas.shape import EVENT_ID_MAX_CHARS, MAX_MINOR, MAX_QUANTITY
from refledger.schemas.timestamps import MAX_MILLIS, MIN_MILLIS

HEADER_SIZE = 10
_KINDS = ("view", "click")  # the first two symbols of the EventType enum
_NULL_BRANCHES = bytes(9)   # order … adjustment, close, policy: union branch 0 (null), one byte each
_ORDER, _REFUND = 4, 6      # the EventType symbols order (2) and refund (3), zig-zag encoded
_ALLIANCE_NULLS = bytes(7)  # member … adjustment, close, policy: null


def _signature(b: bytes, i: int) -> tuple[str | None, int]:
    """The optional signature that ends an envelope (null or a string) and the index after it."""
    if b[i] == 0:
        return None, i + 1
    if b[i] != 2:
        raise ValueError("bad union branch for signature")
    return read_string(b, i + 1)


def read_traffic_fields(data: bytes, current_fingerprint: bytes) -> tuple | None:
    """A current-schema view or click message as the tuple ``(type, event_id, occurred_at,
    alliance_id, shop_id, visitor_id, referrer_shop_id, merchant_shop_id, placement_id,
    signature)``, or None (use the general decoder). The consumer takes the fields as they are,
    without building a record."""
    if len(data) < HEADER_SIZE + 12 or data[2:HEADER_SIZE] != current_fingerprint or data[:2] != b"\xc3\x01":
        return None
    try:
        event_id, i = read_string(data, HEADER_SIZE)
        kind = data[i]
        if kind != 0 and kind != 2:   # view (0) or click (1), zig-zag encoded
            return None
        kind >>= 1
        occurred_at, i = read_long(data, i + 1)
        alliance_id, i = read_string(data, i)
        shop_id, i = read_string(data, i)
        if data[i] != 2:              # visitor_id: branch 1 (string); null breaks a shape rule
            return None
        visitor_id, i = read_string(data, i + 1)
        # view, click: the one of this type is branch 1 (a record), the other branch 0 (null)
        if kind:
            if data[i] != 0 or data[i + 1] != 2:
                return None
            i += 2
        else:
            if data[i] != 2:
                return None
            i += 1
        referrer, i = read_string(data, i)
        merchant, i = read_string(data, i)
        placement, i = read_string(data, i)
        if not kind:
            if data[i] != 0:
                return None
            i += 1
        if data[i:i + 9] != _NULL_BRANCHES:
            return None
        signature, i = _signature(data, i + 9)
    except (IndexError, ValueError):
        return None
    if i != len(data) or not 0 < len(event_id) <= EVENT_ID_MAX_CHARS or not MIN_MILLIS <= occurred_at <= MAX_MILLIS:
        return None
    return _KINDS[kind], event_id, occurred_at, alliance_id, shop_id, visitor_id, referrer, merchant, placement, signature


def read_traffic(data: bytes, current_fingerprint: bytes) -> dict | None:
    """The record of a current-schema view or click message, or None (use the general decoder)."""
    fields = read_traffic_fields(data, current_fingerprint)
    if fields is None:
        return None
    name, event_id, occurred_at, alliance_id, shop_id, visitor_id, referrer, merchant, placement, signature = fields
    record = {"event_id": event_id, "type": name, "occurred_at": occurred_at, "alliance_id": alliance_id,
              "shop_id": shop_id, "visitor_id": visitor_id,
              name: {"referrer_shop_id": referrer, "merchant_shop_id": merchant, "placement_id": placement}}
    if signature is not None:
        record["signature"] = signature
    return record


def _currency(code: str) -> bool:
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()


def read_purchase(data: bytes, current_fingerprint: bytes) -> dict | None:
    """The record of a current-schema order or refund message, or None (use the general decoder).

    Declines, besides anything unusual, what breaks a shape rule (no visitor, an order without
    lines, a malformed currency code) and lines written in more than one block: the general
    path reads or rejects those with the right reason.
    """
    if len(data) < HEADER_SIZE + 16 or data[2:HEADER_SIZE] != current_fingerprint or data[:2] != b"\xc3\x01":
        return None
    try:
        event_id, i = read_string(data, HEADER_SIZE)
        kind = data[i]
        if kind != _ORDER and kind != _REFUND:
            return None
        occurred_at, i = read_long(data, i + 1)
        alliance_id, i = read_string(data, i)
        shop_id, i = read_string(data, i)
        if data[i] != 2:              # visitor_id: branch 1 (string); null breaks a shape rule
            return None
        visitor_id, i = read_string(data, i + 1)
        if kind == _ORDER:
            if data[i:i + 3] != b"\x00\x00\x02":   # view, click null; order branch 1
                return None
            order_id, i = read_string(data, i + 3)
            merchant, i = read_string(data, i)
            currency, i = read_string(data, i)
            count, i = read_long(data, i)
            if count <= 0:            # no lines, or a block with its byte size: the general path
                return None
            lines = []
            for _ in range(count):
                sku, i = read_string(data, i)
                category, i = read_string(data, i)
                quantity, i = read_int(data, i)
                unit_price, i = read_long(data, i)
                if quantity > MAX_QUANTITY or not -MAX_MINOR <= unit_price <= MAX_MINOR:
                    return None       # beyond SPEC's bounds: schema_invalid, on the general path
                lines.append({"sku": sku, "category": category, "quantity": quantity,
                              "unit_price_minor": unit_price})
            if data[i] != 0:          # the lines end after one block
                return None
            total, i = read_long(data, i + 1)
            if not -MAX_MINOR <= total <= MAX_MINOR or data[i] != 0:   # refund null
                return None
            i += 1
            name = "order"
            payload = {"order_id": order_id, "merchant_shop_id": merchant, "currency": currency, "lines": lines,
                       "total_minor": total}
        else:
            if data[i:i + 4] != b"\x00\x00\x00\x02":  # view, click, order null; refund branch 1
                return None
            order_id, i = read_string(data, i + 4)
            refund_id, i = read_string(data, i)
            merchant, i = read_string(data, i)
            currency, i = read_string(data, i)
            amount, i = read_long(data, i)
            if not -MAX_MINOR <= amount <= MAX_MINOR:
                return None
            name = "refund"
            payload = {"order_id": order_id, "refund_id": refund_id, "merchant_shop_id": merchant,
                       "currency": currency, "amount_minor": amount}
        if data[i:i + 7] != _ALLIANCE_NULLS:
            return None
        signature, i = _signature(data, i + 7)
    except (IndexError, ValueError):
        return None
    if (i != len(data) or not 0 < len(event_id) <= EVENT_ID_MAX_CHARS or not MIN_MILLIS <= occurred_at <= MAX_MILLIS
            or not _currency(currency)):
        return None
    record = {"event_id": event_id, "type": name, "occurred_at": occurred_at, "alliance_id": alliance_id,
              "shop_id": shop_id, "visitor_id": visitor_id, name: payload}
    if signature is not None:
        record["signature"] = signature
    return record
