"""Fold benchmark: events/s of ``PartitionFold.apply`` on a realistic traffic mix.

    python bench/fold.py                  # 200,000 events, one partition
    python bench/fold.py --events 500000 --profile

The mix: 10 shops, a default cps agreement with category rates, a cpa
scope, a cpc pair and a swap pair; ~60 % views, ~30 % clicks, ~8 % orders,
~2 % refunds; thousands of visitors; events mostly in time order with a few
percent arriving late. Records are built up front (already decoded) and
frozen out of the garbage collector's way, so the figure is the fold alone,
default collector settings included. Prints one line per run and a JSON summary line.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import random
import time

from refledger.ledger.fold import PartitionFold

START = 1_793_491_200_000  # 2026-11-01T00:00:00Z
MINUTE = 60_000
SHOPS = [f"shop-{i:02d}" for i in range(10)]
CATEGORIES = ["toys", "care", "apparel", "food", "books"]


def _envelope(n, kind, t, shop, visitor, payload):
    return {"event_id": f"{kind[:2]}-{n:07d}", "type": kind, "occurred_at": t, "alliance_id": "bench",
            "shop_id": shop, "visitor_id": visitor, kind: payload}


def _agreement(n, agreement_id, merchant, referrer, model, **terms):
    payload = {"agreement_id": agreement_id, "version": 1, "effective_from": START,
               "merchant_shop_id": merchant, "referrer_shop_id": referrer, "model": model,
               "rate_bp": None, "category_rates_bp": {}, "amount_minor": None, "currency": None,
               "attribution_window_days": 15, "hold_days": 15}
    payload.update(terms)
    return _envelope(n, "agreement", START - 60 * MINUTE, "alliance", None, payload)


def generate(total: int, visitors: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    events = [_envelope(i, "member", START - 120 * MINUTE, "alliance", None,
                        {"member_shop_id": shop, "status": "active"}) for i, shop in enumerate(SHOPS)]
    n = len(events)
    events += [
        _agreement(n, "default", "*", "*", "cps", rate_bp=500, category_rates_bp={"toys": 800, "books": 300}),
        _agreement(n + 1, "s3-cpa", SHOPS[3], "*", "cpa", amount_minor=300, currency="CNY"),
        _agreement(n + 2, "s1-s2-cpc", SHOPS[1], SHOPS[2], "cpc", amount_minor=20, currency="CNY", hold_days=0),
        _agreement(n + 3, "s4-s5-swap", SHOPS[4], SHOPS[5], "swap"),
    ]
    n += 4
    last_click: dict[str, tuple[str, str]] = {}
    orders: list[tuple[str, str, int, int]] = []  # merchant, order_id, total, refunded
    t = START
    while len(events) < total:
        n += 1
        t += rng.randint(0, 4000)
        at = t - rng.randint(0, 3 * 3600_000) if rng.random() < 0.03 else t
        visitor = f"v-{rng.randrange(visitors)}"
        roll = rng.random()
        if roll < 0.60:
            ref, mer = rng.sample(SHOPS, 2)
            events.append(_envelope(n, "view", at, ref, visitor,
                                    {"referrer_shop_id": ref, "merchant_shop_id": mer, "placement_id": "p"}))
        elif roll < 0.90:
            ref, mer = rng.sample(SHOPS, 2) if rng.random() > 0.02 else (SHOPS[0], SHOPS[0])
            last_click[visitor] = (ref, mer)
            events.append(_envelope(n, "click", at, ref, visitor,
                                    {"referrer_shop_id": ref, "merchant_shop_id": mer, "placement_id": "p"}))
        elif roll < 0.98:
            mer = last_click.get(visitor, (None, rng.choice(SHOPS)))[1]
            lines = [{"sku": f"sku-{rng.randrange(500)}", "category": rng.choice(CATEGORIES),
                      "quantity": rng.randint(1, 3), "unit_price_minor": rng.randint(100, 30000)}
                     for _ in range(rng.randint(1, 4))]
            total_minor = sum(ln["quantity"] * ln["unit_price_minor"] for ln in lines)
            order_id = f"o-{n}"
            orders.append([mer, order_id, total_minor, 0])
            events.append(_envelope(n, "order", at, mer, visitor,
                                    {"order_id": order_id, "merchant_shop_id": mer, "currency": "CNY",
                                     "lines": lines, "total_minor": total_minor}))
        elif orders:
            order = orders[rng.randrange(max(0, len(orders) - 2000), len(orders))]
            left = order[2] - order[3]
            if left <= 0:
                continue
            amount = rng.randint(1, left)
            order[3] += amount
            events.append(_envelope(n, "refund", at, order[0], visitor,
                                    {"order_id": order[1], "refund_id": f"rf-{n}", "merchant_shop_id": order[0],
                                     "currency": "CNY", "amount_minor": amount}))
    return events


def run(records: list[dict], freeze_every: int = 0) -> tuple[float, str, int]:
    """Fold every record into a fresh partition; (CPU seconds, chain head, entries posted).

    ``freeze_every`` > 0 calls ``gc.freeze()`` after every that many events, as a
    consumer may after each committed batch: the fold's state lives as long as
    the process, so the collector need not walk it again and again.
    """
    gc.collect()
    fold = PartitionFold()
    apply = fold.apply
    entries = 0
    started = time.process_time()
    if freeze_every:
        for start in range(0, len(records), freeze_every):
            for record in records[start:start + freeze_every]:
                entries += len(apply(record).entries)
            gc.freeze()
    else:
        for record in records:
            entries += len(apply(record).entries)
    seconds = time.process_time() - started
    head = fold.chain_head
    if freeze_every:
        del fold, apply
        gc.unfreeze()
        gc.collect()
        gc.freeze()  # the input records again, as before the run
    return seconds, head, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--visitors", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile run")
    parser.add_argument("--freeze-every", type=int, default=0, metavar="N",
                        help="gc.freeze() after every N events, as a consumer may per batch (default: never)")
    args = parser.parse_args()

    records = generate(args.events, args.visitors, args.seed)
    # In the pipeline a record lives only while its batch is folded; here all of
    # them are built up front, so keep the collector from walking them.
    gc.collect()
    gc.freeze()
    counts: dict[str, int] = {}
    for r in records:
        counts[r["type"]] = counts.get(r["type"], 0) + 1
    print(f"{len(records):,} events: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(records)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    best = None
    rates = []
    for i in range(args.runs):
        seconds, head, entries = run(records, args.freeze_every)
        rate = len(records) / seconds
        best = rate if best is None else max(best, rate)
        rates.append(rate)
        print(f"run {i + 1}: {seconds:.2f} s, {rate:,.0f} events/s, {entries:,} entries, head {head[:16]}")
    rates.sort()
    print(json.dumps({"events": len(records), "best_events_per_s": round(best),
                      "median_events_per_s": round(rates[len(rates) // 2]), "freeze_every": args.freeze_every,
                      "types": counts}))


if __name__ == "__main__":
    main()
