"""Throughput of the codec on realistic events, next to bare fastavro calls.

Run: ``python bench/codec.py [--number N]``. Prints events per second.
"""

from __future__ import annotations

import argparse
import io
import timeit
from collections.abc import Callable

import fastavro

from refledger.schemas import codec
from refledger.schemas.versions import strip_logical_types

CLICK = {
    "event_id": "c-000123", "type": "click", "occurred_at": 1793527200000, "alliance_id": "baby-care",
    "shop_id": "li-kids", "visitor_id": "v-7f3a",
    "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "article-12"},
}
ORDER = {
    "event_id": "o-000124", "type": "order", "occurred_at": 1793527500000, "alliance_id": "baby-care",
    "shop_id": "wang-bath", "visitor_id": "v-7f3a",
    "order": {
        "order_id": "o1", "merchant_shop_id": "wang-bath", "currency": "CNY",
        "lines": [
            {"sku": "bath-gel", "category": "care", "quantity": 2, "unit_price_minor": 4950},
            {"sku": "lotion", "category": "care", "quantity": 1, "unit_price_minor": 3333},
        ],
        "total_minor": 13233,
    },
}


def _rate(call: Callable[[], object], number: int) -> float:
    return number / min(timeit.repeat(call, number=number, repeat=5))


def _v1_message(record: dict) -> bytes:
    v1 = codec.SCHEMA_VERSIONS[0]
    datum = dict.fromkeys(("view", "click", "order", "refund", "member", "agreement", "settlement", "payout",
                           "adjustment"))
    datum.update(record)
    stream = io.BytesIO(codec.MAGIC + v1.fingerprint)
    stream.seek(0, io.SEEK_END)
    fastavro.schemaless_writer(stream, fastavro.parse_schema(strip_logical_types(v1.schema())), datum)
    return stream.getvalue()


def measure(record: dict, number: int) -> dict[str, float]:
    """Events per second of each operation on ``record``."""
    message = codec.encode(record)
    body = message[codec.HEADER_SIZE:]
    writer = fastavro.parse_schema(strip_logical_types(codec.CURRENT_VERSION.schema()))
    datum = {**dict.fromkeys(("view", "click", "order", "refund", "member", "agreement", "settlement", "payout",
                              "adjustment", "signature")), **record}
    old = _v1_message(record)
    line = codec.record_to_json_line(record)

    def bare_write() -> bytes:
        stream = io.BytesIO()
        fastavro.schemaless_writer(stream, writer, datum)
        return stream.getvalue()

    return {
        "bare fastavro.schemaless_reader": _rate(lambda: fastavro.schemaless_reader(io.BytesIO(body), writer), number),
        "codec.decode": _rate(lambda: codec.decode(message), number),
        "codec.decode (v1 writer)": _rate(lambda: codec.decode(old), number),
        "bare fastavro.schemaless_writer": _rate(bare_write, number),
        "codec.encode": _rate(lambda: codec.encode(record), number),
        "codec.canonical_body": _rate(lambda: codec.canonical_body(record), number),
        "codec.record_from_json (line)": _rate(lambda: codec.record_from_json(line), number),
        "codec.record_to_json_line": _rate(lambda: codec.record_to_json_line(record), number),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=50_000, help="calls per timing run")
    args = parser.parse_args()
    for name, record in (("click", CLICK), ("order", ORDER)):
        print(f"{name} event, {len(codec.encode(record))} bytes as a message")
        for operation, rate in measure(record, args.number).items():
            print(f"  {operation:34} {rate:>10,.0f} events/s")


if __name__ == "__main__":
    main()
