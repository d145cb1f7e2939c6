"""Ed25519 for signed events (SPEC §4a): PyNaCl (libsodium) against `cryptography` (OpenSSL).

One run measures both libraries on the canonical bytes of a realistic click:

* ``sign`` and ``verify``: events per second of CPU time on one thread;
* ``verify_2_threads``: events per second of wall time with two threads verifying at once
  (about twice ``verify`` when the library lets go of the interpreter lock and a second
  core is free);
* ``python_progress``: how far a pure-Python loop gets while another thread verifies, as a
  fraction of how far it gets alone (near 1 when verification runs outside the interpreter
  lock, near 0.5 or less when it holds it).

Run: ``python bench/signing.py [--events N]``. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Callable

from nacl.bindings import crypto_sign_open
from nacl.signing import SigningKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from refledger.schemas.signing import canonical_bytes

CLICK = {
    "event_id": "c-000123", "type": "click", "occurred_at": 1793527200000, "alliance_id": "baby-care",
    "shop_id": "li-kids", "visitor_id": "v-7f3a",
    "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "article-12"},
}
SEED = bytes(range(32))


def _libraries(message: bytes) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """Each library's (sign once, verify once) on the message, keys loaded beforehand."""
    nacl_key = SigningKey(SEED)
    public = bytes(nacl_key.verify_key)
    signed = nacl_key.sign(message)  # signature + message, what libsodium verifies
    ossl_key = Ed25519PrivateKey.from_private_bytes(SEED)
    ossl_public = ossl_key.public_key()
    signature = ossl_key.sign(message)
    assert signature == signed.signature  # Ed25519 is deterministic: both libraries sign alike
    return {
        "pynacl": (lambda: nacl_key.sign(message), lambda: crypto_sign_open(signed, public)),
        "cryptography": (lambda: ossl_key.sign(message), lambda: ossl_public.verify(signature, message)),
    }


def _cpu_rate(call: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        call()
    return n / (time.process_time() - started)


def _threads_rate(call: Callable[[], object], n: int, threads: int) -> float:
    def work():
        for _ in range(n):
            call()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * n / (time.perf_counter() - started)


def _count_for(seconds: float) -> int:
    """A pure-Python loop: how far it gets in ``seconds`` of wall time."""
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        count += 1
    return count


def _python_progress(call: Callable[[], object], seconds: float = 1.0) -> float:
    alone = _count_for(seconds)
    done = threading.Event()

    def verify_until_done():
        while not done.is_set():
            call()

    worker = threading.Thread(target=verify_until_done)
    worker.start()
    beside = _count_for(seconds)
    done.set()
    worker.join()
    return beside / alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    message = canonical_bytes(CLICK)
    results = {}
    for name, (sign, verify) in _libraries(message).items():
        results[f"{name}_sign_per_s"] = int(_cpu_rate(sign, args.events))
        results[f"{name}_verify_per_s"] = int(_cpu_rate(verify, args.events))
        results[f"{name}_verify_2_threads_per_s"] = int(_threads_rate(verify, args.events // 2, 2))
        results[f"{name}_python_progress"] = round(_python_progress(verify), 2)
    results["verify_faster"] = max(("pynacl", "cryptography"), key=lambda n: results[f"{n}_verify_per_s"])

    from refledger.render import emit

    emit([{"measure": k, "value": v} for k, v in results.items()], "table", ("measure", "value"),
         title=f"Ed25519 on one {len(message)}-byte event (one run)", numeric=())
    print(json.dumps(results))


if __name__ == "__main__":
    main()
