"""A reader for the bulk of the traffic: views and clicks in the current schema.

Views and clicks are nine events in ten. Their single-object messages, when
written with the current schema, have a fixed layout: the envelope's fields,
one non-null branch (``view`` or ``click``) of three strings, seven null
branches and the optional signature. Reading that layout directly is about
three times faster than the general resolving decoder, and the consumer
spends most of its time decoding.

``read_traffic(data)`` returns exactly the record ``codec.decode(data)``
returns (``read_traffic_fields`` the same as a flat tuple), or None whenever the message is anything else or anything is
unusual (another fingerprint or type, a shape rule broken, bad UTF-8,
trailing bytes): the caller then takes the general path, which decodes or
rejects it with the right reason. A property test holds the two readers to
the same answers.
"""

from __future__ import annotations

from schemas.shape import EVENT_ID_MAX_CHARS
from schemas.timestamps import MAX_MILLIS, MIN_MILLIS

HEADER_SIZE = 10
_KINDS = ("view", "click")  # the first two symbols of the EventType enum
_NULL_BRANCHES = bytes(7)   # order … adjustment: union branch 0 (null), one byte each


def read_long(b: bytes, i: int) -> tuple[int, int]:
    """The zig-zag varint at b[i] (an Avro int or long) and the index after it."""
    x = b[i]
    if x < 0x80:
        return (x >> 1) ^ -(x & 1), i + 1
    n, shift = x & 0x7F, 7
    while True:
        i += 1
        x = b[i]
        n |= (x & 0x7F) << shift
        if x < 0x80:
            return (n >> 1) ^ -(n & 1), i + 1
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _text(b: bytes, i: int) -> tuple[str, int]:
    n, i = read_long(b, i)
    end = i + n
    if n < 0 or end > len(b):
        raise ValueError("string runs past the message")
    return b[i:end].decode("utf-8"), end


def read_traffic_fields(data: bytes, current_fingerprint: bytes) -> tuple | None:
    """A current-schema view or click message as the tuple ``(type, event_id, occurred_at,
    alliance_id, shop_id, visitor_id, referrer_shop_id, merchant_shop_id, placement_id,
    signature)``, or None (use the general decoder). The consumer takes the fields as they are,
    without building a record."""
    if len(data) < HEADER_SIZE + 12 or data[2:HEADER_SIZE] != current_fingerprint or data[:2] != b"\xc3\x01":
        return None
    # Strings shorter than 64 bytes (nearly all ids) have a one-byte length; the rest go through _text.
    try:
        i = HEADER_SIZE
        x = data[i]
        if x < 0x80:
            i += 1 + (x >> 1)
            event_id = data[HEADER_SIZE + 1:i].decode()
        else:
            event_id, i = _text(data, i)
        kind = data[i]
        if kind != 0 and kind != 2:   # view (0) or click (1), zig-zag encoded
            return None
        kind >>= 1
        occurred_at, i = read_long(data, i + 1)
        x = data[i]
        if x < 0x80:
            start, i = i + 1, i + 1 + (x >> 1)
            alliance_id = data[start:i].decode()
        else:
            alliance_id, i = _text(data, i)
        x = data[i]
        if x < 0x80:
            start, i = i + 1, i + 1 + (x >> 1)
            shop_id = data[start:i].decode()
        else:
            shop_id, i = _text(data, i)
        if data[i] != 2:              # visitor_id: branch 1 (string); null breaks a shape rule
            return None
        i += 1
        x = data[i]
        if x < 0x80:
            start, i = i + 1, i + 1 + (x >> 1)
            visitor_id = data[start:i].decode()
        else:
            visitor_id, i = _text(data, i)
        # view, click: the one of this type is branch 1 (a record), the other branch 0 (null)
        if kind:
            if data[i] != 0 or data[i + 1] != 2:
                return None
            i += 2
        else:
            if data[i] != 2:
                return None
            i += 1
        x = data[i]
        if x < 0x80:
            start, i = i + 1, i + 1 + (x >> 1)
            referrer = data[start:i].decode()
        else:
            referrer, i = _text(data, i)
        x = data[i]
        if x < 0x80:
            start, i = i + 1, i + 1 + (x >> 1)
            merchant = data[start:i].decode()
        else:
            merchant, i = _text(data, i)
        x = data[i]
        if x < 0x80:
            start, i = i + 1, i + 1 + (x >> 1)
            placement = data[start:i].decode()
        else:
            placement, i = _text(data, i)
        if not kind:
            if data[i] != 0:
                return None
            i += 1
        if data[i:i + 7] != _NULL_BRANCHES:
            return None
        i += 7
        signature = None
        if data[i] == 2:
            signature, i = _text(data, i + 1)
        elif data[i] == 0:
            i += 1
        else:
            return None
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
