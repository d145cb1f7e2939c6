"""Ed25519 for signed events (SPEC §4a): PyNaCl (libsodium) against `cryptography` (OpenSSL).

One run measures both libraries on the canonical bytes of a realistic click:

* ``sign`` and ``verify``: events per second of CPU time on one thread;
* ``releases_gil``: whether a Python thread runs while another thread is inside the
  library's verify call. One long call (a 64 MB message) runs on a thread; the main
  thread sleeps 20 ms into it and notes when it gets the interpreter back: before the
  call has returned if the library let go of the lock, after it if not. This does
  not depend on how busy the machine's cores are.

Run: ``pip install -e ".[bench]" && python bench/signing.py [--events N]``. Prints a table, then
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Callable

from cryptography.exceptions import InvalidSignature
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from refledger.schemas.signing import canonical_bytes

CLICK = {
    "event_id": "c-000123", "type": "click", "occurred_at": 1793527200000, "alliance_id": "baby-care",
    "shop_id": "li-kids", "visitor_id": "v-7f3a",
    "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "article-12"},
}
SEED = bytes(range(32))


def _libraries(message: bytes) -> dict[str, tuple[Callable[[], object], Callable[[], object], Callable]]:
    """Each library's (sign once, verify once, a verify call of any message) on the message, keys
    loaded beforehand; the last one is given a wrong signature: only its duration matters."""
    nacl_key = SigningKey(SEED)
    public = bytes(nacl_key.verify_key)
    signed = nacl_key.sign(message)  # signature + message, what libsodium verifies
    ossl_key = Ed25519PrivateKey.from_private_bytes(SEED)
    ossl_public = ossl_key.public_key()
    signature = ossl_key.sign(message)
    assert signature == signed.signature  # Ed25519 is deterministic: both libraries sign alike

    def nacl_any(data: bytes):
        signed_data = signature + data  # made here, outside the timed call

        def call():
            try:
                crypto_sign_open(signed_data, public)
            except BadSignatureError:
                pass
        return call

    def ossl_any(data: bytes):
        def call():
            try:
                ossl_public.verify(signature, data)
            except InvalidSignature:
                pass
        return call

    return {
        "pynacl": (lambda: nacl_key.sign(message), lambda: crypto_sign_open(signed, public), nacl_any),
        "cryptography": (lambda: ossl_key.sign(message), lambda: ossl_public.verify(signature, message), ossl_any),
    }


def _cpu_rate(call: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        call()
    return n / (time.process_time() - started)


def _releases_gil(verify_message: Callable[[bytes], Callable[[], object]]) -> bool:
    call = verify_message(bytes(64 * 1024 * 1024))
    calling, returned = threading.Event(), []

    def work():
        calling.set()
        call()
        returned.append(time.perf_counter())

    worker = threading.Thread(target=work)
    worker.start()
    calling.wait()
    time.sleep(0.02)
    back = time.perf_counter()
    worker.join()
    return back < returned[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    message = canonical_bytes(CLICK)
    results = {}
    for name, (sign, verify, verify_any) in _libraries(message).items():
        results[f"{name}_sign_per_s"] = int(_cpu_rate(sign, args.events))
        results[f"{name}_verify_per_s"] = int(_cpu_rate(verify, args.events))
        results[f"{name}_releases_gil"] = _releases_gil(verify_any)
    results["verify_faster"] = max(("pynacl", "cryptography"), key=lambda n: results[f"{n}_verify_per_s"])

    from refledger.render import emit

    emit([{"measure": k, "value": v} for k, v in results.items()], "table", ("measure", "value"),
         title=f"Ed25519 on one {len(message)}-byte event (one run)", numeric=())
    print(json.dumps(results))


if __name__ == "__main__":
    main()
