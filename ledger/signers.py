"""Who must have signed an event: the signing policy and the key timelines, in log order (SPEC §4a).

``Signers`` follows a partition's folded ``policy`` and ``member`` events and
answers ``keys_for(event)``: None when nothing is checked, else the public
keys (base64) any one of which must have signed the event (none at all: no
signature can do).

* While the policy in force does not require signatures, nothing is checked,
  except a ``policy`` that requires them itself.
* A ``policy`` needs the operator key in force before it; when there is none
  yet (the first policy that names one), the key it names itself.
* Any other alliance event needs the operator key in force.
* A shop event needs its emitter's (``shop_id``'s) key: the key of the
  latest folded ``member`` event that gave one, or a key the shop had before,
  if the event is dated before every later ``member`` event that changed the
  shop's key (``occurred_at`` strictly earlier).

Policies and keys change in log order, when their event is folded
(``adopt``); a quarantined event changes nothing. What a signature covers and
how it is checked is not this module's business: the fold is given a
``SignatureCheck`` (the canonical bytes of a record, Ed25519), and the decode
step may hand it a ``Signature`` with the key it expected, verified ahead or
not tried yet (the fold then verifies it itself).
"""

from __future__ import annotations

from typing import Protocol

from refledger.ledger.events import Event

SHOP_TYPES = frozenset({"view", "click", "order", "refund"})


class Signature:
    """An event's signature as the decode step found it, and what it verified ahead.

    The one value here that changes: ``valid`` is written in place once a verifying thread has
    tried the key (``consumers.verification``), so the item holding it is not built again."""

    __slots__ = ("signature", "message", "key", "valid")

    def __init__(self, signature: str | None, message: bytes | None, key: str | None = None,
                 valid: bool | None = None):
        self.signature = signature  # base64, as the event carries it; None: unsigned
        self.message = message      # the canonical bytes it covers; None when the event has none
        self.key = key              # the public key it was (or is to be) verified against ahead, if any
        self.valid = valid          # whether it verified under that key; None: not tried yet

    def fields(self) -> tuple:
        return self.signature, self.message, self.key, self.valid

    def __eq__(self, other) -> bool:
        return type(other) is Signature and self.fields() == other.fields()

    def __repr__(self) -> str:
        return f"Signature{self.fields()!r}"


class SignatureCheck(Protocol):
    """What the fold is given to check signatures with (it imports no cryptography)."""

    def message(self, record: dict) -> bytes | None:
        """The canonical bytes of a record (None when it has none)."""

    def verify(self, public_key: str, signature: str, message: bytes) -> bool:
        """Whether ``signature`` signs ``message`` under ``public_key``."""


class Signers:
    """The signing policy and every shop's keys, as a partition's log has set them so far."""

    __slots__ = ("required", "operator_key", "policy_id", "_keys", "_previous")

    def __init__(self):
        self.required = False                 # the policy in force requires signatures
        self.operator_key: str | None = None  # the operator key in force
        self.policy_id: str | None = None     # the policy in force
        self._keys: dict[str, str] = {}       # shop → its key now
        self._previous: dict[str, tuple[tuple[int, str], ...]] = {}  # shop → (dated before, key) of older keys

    def keys_for(self, ev: Event) -> tuple[str, ...] | None:
        """The keys one of which must have signed ``ev``; None when it is not checked."""
        kind = ev.type
        if kind == "policy":
            if not (self.required or ev.require_signatures):
                return None
            key = self.operator_key or ev.operator_public_key
            return (key,) if key else ()
        if not self.required:
            return None
        return self.keys_of(kind, ev.shop_id, ev.occurred_at)

    def keys_of(self, kind: str, shop_id: str, occurred_at: int) -> tuple[str, ...]:
        """The keys one of which must sign an event of this type, emitter and date (not a policy)
        while signatures are required: the key in force first."""
        if kind in SHOP_TYPES:
            current = self._keys.get(shop_id)
            keys = (current,) if current else ()
            previous = self._previous.get(shop_id)
            if previous:
                keys += tuple(key for before, key in previous if occurred_at < before and key != current)
            return keys
        return (self.operator_key,) if self.operator_key else ()

    def adopt(self, ev: Event) -> None:
        """A folded ``policy`` or ``member`` event takes effect from now on."""
        if ev.type == "policy":
            self.required = ev.require_signatures
            self.policy_id = ev.policy_id
            if ev.operator_public_key is not None:
                self.operator_key = ev.operator_public_key
        elif ev.type == "member" and ev.public_key is not None:
            shop, key, since = ev.member_shop_id, ev.public_key, ev.occurred_at
            old = self._keys.get(shop)
            if old is None or old == key:
                self._keys[shop] = key
                return
            # every older key now verifies only events dated before this change, too
            kept = tuple((min(before, since), k) for before, k in self._previous.get(shop, ()) if k != key)
            self._previous[shop] = kept + ((since, old),)
            self._keys[shop] = key

    def policy_row(self) -> tuple:
        """(require_signatures, operator key, policy id) in force, for a snapshot."""
        return (self.required, self.operator_key, self.policy_id)

    def key_rows(self) -> list[tuple[str, str, int | None]]:
        """(shop, key, dated before) of every key a shop may sign with; None: the key in force."""
        rows = [(shop, key, None) for shop, key in sorted(self._keys.items())]
        rows += [(shop, key, before) for shop, older in sorted(self._previous.items()) for before, key in older]
        return rows

    def restore(self, policy: tuple, keys) -> None:
        """The state of ``policy_row`` and ``key_rows``, into a new ``Signers``."""
        self.required, self.operator_key, self.policy_id = policy
        for shop, key, before in keys:
            if before is None:
                self._keys[shop] = key
            else:
                self._previous[shop] = self._previous.get(shop, ()) + ((before, key),)

    def who(self, ev: Event) -> str:
        """Whose key ``ev`` needs, in words."""
        if ev.type in SHOP_TYPES:
            return f"{ev.shop_id}'s key"
        if ev.type == "policy" and not self.operator_key:
            return "the operator key it names"
        return "the operator's key"

    def size(self) -> int:
        return len(self._keys) + sum(map(len, self._previous.values()))
