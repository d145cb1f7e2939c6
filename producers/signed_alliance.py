"""A simulated alliance that signs its events (SPEC §4a): `refledger simulate --sign`.

``signed_simulation(records, seed)`` takes a simulated alliance's records
(``producers.simulate``) and yields them signed:

1. first a ``policy`` requiring signatures that names the operator's key,
   signed by that key (the first policy is checked against the key it names);
2. every ``member`` event publishes the shop's key (``public_key``);
3. every event is signed by its emitter: shop events by their ``shop_id``'s
   key, alliance events by the operator's.

Keys are derived from the seed and the name (``schemas.keys.derived_key(seed,
shop)``, the operator's as ``derived_key(seed, "alliance")``), so the same
seed gives the same keys and the same signatures, byte for byte, and anyone
who knows the seed can rebuild them: fit for simulations, never for a real
shop. A shop that never joined signs with its own derived key, but no member
event published it: its events are ``bad_signature`` where an unsigned
alliance says ``unknown_shop``.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from nacl.signing import SigningKey

from refledger.schemas.keys import derived_key, public_key_text
from refledger.schemas.signing import signed_record

OPERATOR = "alliance"


class SimulatedKeys:
    """Every party's derived key, made once."""

    def __init__(self, seed: int | str):
        self.seed = seed
        self._keys: dict[str, SigningKey] = {}

    def of(self, party: str) -> SigningKey:
        key = self._keys.get(party)
        if key is None:
            key = self._keys[party] = derived_key(self.seed, party)
        return key


def signing_policy(alliance_id: str, occurred_at: int, operator: SigningKey) -> dict:
    """The operator's policy requiring signatures, signed by the key it names."""
    policy = {"event_id": f"{alliance_id}-policy-signing", "type": "policy", "occurred_at": occurred_at,
              "alliance_id": alliance_id, "shop_id": OPERATOR, "visitor_id": None,
              "policy": {"policy_id": "signing", "require_signatures": True,
                         "operator_public_key": public_key_text(operator)}}
    return signed_record(policy, operator)


def signed_simulation(records: Iterable[dict], seed: int | str) -> Iterator[dict]:
    """The records, signed by their emitters, after the policy that requires it."""
    keys = SimulatedKeys(seed)
    operator = keys.of(OPERATOR)
    started = False
    for record in records:
        if not started:
            started = True
            yield signing_policy(record["alliance_id"], record["occurred_at"], operator)
        if record["type"] == "member" and record["member"].get("public_key") is None:
            shop = record["member"]["member_shop_id"]
            record = {**record, "member": {**record["member"], "public_key": public_key_text(keys.of(shop))}}
        yield signed_record(record, keys.of(record["shop_id"]))
