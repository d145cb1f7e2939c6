"""Signed events (SPEC §4a), folded: who must have signed what, and when.

Stories of the baby-care alliance: li-kids refers visitors to wang-bath; the
operator turns signing on, members rotate keys, and events arrive unsigned,
signed by the wrong shop, late, or twice.
"""

from __future__ import annotations

import pytest

from refledger.consumers.verification import signed_fold
from refledger.ledger.events import BAD_SIGNATURE, PERIOD_CLOSED
from refledger.ledger.fold import PartitionFold
from refledger.ledger.signers import Signature

from tests.ledger_support import SCENARIOS, load_records
from tests.signing_support import (
    LI, LI_NEW, LI_NEWER, OPERATOR, STRANGER, WANG, agreement, click, close, founding, key, member, order,
    policy, record, signed,
)


def fold_story(records):
    fold = signed_fold()
    return fold, [fold.apply(r) for r in records]


def reasons(outcomes) -> list:
    return [o.quarantine for o in outcomes]


def test_an_unsigned_alliance_folds_as_before():
    records = load_records(SCENARIOS / "baby-care.jsonl")
    plain = PartitionFold()
    before = [e for r in records for e in plain.apply(r).entries]
    fold, outcomes = fold_story(records)
    assert [e for o in outcomes for e in o.entries] == before
    assert fold.chain_head == plain.chain_head


def test_before_any_policy_a_signature_is_not_checked():
    records = founding()[:3] + [{**record(click("c-1", "2026-11-01T10:00:00.000Z")), "signature": "not-a-signature"}]
    _, outcomes = fold_story(records)
    assert reasons(outcomes) == [None] * 4


def test_once_signatures_are_required_li_kids_click_must_be_signed_by_li_kids():
    clicks = [signed(click("c-good", "2026-11-01T10:00:00.000Z"), LI),
              record(click("c-unsigned", "2026-11-01T10:01:00.000Z")),
              signed(click("c-by-wang", "2026-11-01T10:02:00.000Z"), WANG),
              signed(click("c-by-operator", "2026-11-01T10:03:00.000Z"), OPERATOR)]
    tampered = signed(click("c-tampered", "2026-11-01T10:04:00.000Z"), LI)
    tampered["click"] = {**tampered["click"], "merchant_shop_id": "li-kids"}
    _, outcomes = fold_story(founding() + clicks + [tampered])
    assert reasons(outcomes[4:]) == [None, BAD_SIGNATURE, BAD_SIGNATURE, BAD_SIGNATURE, BAD_SIGNATURE]
    assert outcomes[5].detail == "unsigned click: signatures are required (policy p-1)"
    assert outcomes[6].detail == "click not signed by li-kids's key"


def test_a_signed_order_earns_li_kids_its_commission_and_an_unsigned_one_earns_nothing():
    story = founding() + [signed(click("c-1", "2026-11-01T10:00:00.000Z"), LI),
                          signed(order("o-1", "2026-11-01T10:05:00.000Z", "o1"), WANG),
                          record(order("o-2", "2026-11-01T10:06:00.000Z", "o2"))]
    fold, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [None, None, BAD_SIGNATURE]
    earned = [e.amount for e in outcomes[5].entries if e.shop_id == "li-kids" and e.account == "earned_pending"]
    assert earned == [800]
    assert outcomes[6].entries == ()


def test_alliance_events_must_be_signed_by_the_operator_key_in_force():
    story = founding() + [record(agreement("a-unsigned", "2026-11-02T00:00:00.000Z", 900)),
                          signed(agreement("a-by-li", "2026-11-02T00:00:00.000Z", 900), LI),
                          signed(agreement("a-2", "2026-11-02T00:00:00.000Z", 900), OPERATOR),
                          record(member("m-zhang", "2026-11-02T00:00:00.000Z", "zhang-toys"))]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [BAD_SIGNATURE, BAD_SIGNATURE, None, BAD_SIGNATURE]
    assert outcomes[5].detail == "agreement not signed by the operator's key"


def test_a_policy_signed_by_a_key_other_than_the_operators_in_force_is_bad_signature():
    rotation = policy("p-2", "2026-11-05T00:00:00.000Z", True, key(STRANGER))
    story = founding() + [signed(rotation, STRANGER),
                          signed(agreement("a-2", "2026-11-06T00:00:00.000Z"), STRANGER),
                          signed(agreement("a-3", "2026-11-06T00:00:00.000Z"), OPERATOR)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [BAD_SIGNATURE, BAD_SIGNATURE, None]
    # once an operator key is in force, a new policy answers to it, not to the key it names
    assert outcomes[4].detail == "policy not signed by the operator's key"


def test_the_operator_hands_over_to_a_new_key_with_a_policy_signed_by_the_old_one():
    story = founding() + [signed(policy("p-2", "2026-11-05T00:00:00.000Z", True, key(STRANGER)), OPERATOR),
                          signed(agreement("a-old-key", "2026-11-06T00:00:00.000Z"), OPERATOR),
                          signed(agreement("a-new-key", "2026-11-06T00:00:00.000Z"), STRANGER)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [None, BAD_SIGNATURE, None]


def test_the_first_policy_is_checked_against_the_key_it_names_itself():
    first = policy("p-1", "2026-11-01T00:00:00.000Z", True, key(OPERATOR))
    for signer, verdict in ((OPERATOR, None), (STRANGER, BAD_SIGNATURE)):
        _, outcomes = fold_story(founding()[:3] + [signed(first, signer)])
        assert outcomes[3].quarantine == verdict
    assert outcomes[3].detail == "policy not signed by the operator key it names"
    _, outcomes = fold_story(founding()[:3] + [record(first)])
    assert outcomes[3].quarantine == BAD_SIGNATURE
    # a first policy that names no key cannot be verified
    _, outcomes = fold_story(founding()[:3] + [signed(policy("p-0", "2026-11-01T00:00:00.000Z", True), OPERATOR)])
    assert outcomes[3].quarantine == BAD_SIGNATURE
    assert outcomes[3].detail == "no key is known to verify a policy of alliance"


def test_a_rejected_first_policy_leaves_signing_off():
    story = founding()[:3] + [signed(policy("p-1", "2026-11-01T00:00:00.000Z", True, key(OPERATOR)), STRANGER),
                              record(click("c-1", "2026-11-01T10:00:00.000Z"))]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[3:]) == [BAD_SIGNATURE, None]


def test_a_policy_turning_the_requirement_off_must_itself_be_signed_then_nothing_is_checked():
    off = policy("p-off", "2026-11-10T00:00:00.000Z", False)
    story = founding() + [record(off),                                       # unsigned: refused
                          record(click("c-1", "2026-11-10T10:00:00.000Z")),  # still required
                          signed(off, OPERATOR),
                          record(click("c-2", "2026-11-10T11:00:00.000Z")),
                          {**record(click("c-3", "2026-11-10T12:00:00.000Z")), "signature": "garbage"}]
    fold, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [BAD_SIGNATURE, BAD_SIGNATURE, None, None, None]
    assert not fold.signers.required and fold.signers.operator_key == key(OPERATOR)


def test_li_kids_rotates_its_key_and_its_old_key_still_signs_what_happened_before():
    rotation = signed(member("m-li-2", "2026-11-10T00:00:00.000Z", "li-kids", key(LI_NEW)), OPERATOR)
    story = founding() + [rotation,
                          signed(click("c-late-old-key", "2026-11-09T23:59:59.999Z"), LI),  # before: old key ok
                          signed(click("c-at-rotation", "2026-11-10T00:00:00.000Z"), LI),   # at it: not before
                          signed(click("c-after-old-key", "2026-11-11T00:00:00.000Z"), LI),
                          signed(click("c-after-new-key", "2026-11-11T00:00:01.000Z"), LI_NEW),
                          signed(click("c-late-new-key", "2026-11-09T12:00:00.000Z", "v2"), LI_NEW)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [None, None, BAD_SIGNATURE, BAD_SIGNATURE, None, None]


def test_a_late_rotation_limits_every_older_key_to_events_dated_before_it():
    """Keys change in log order; a member event dated before the previous change limits all the
    keys it retires: li-kids's first key no longer signs what is dated after the later-logged,
    earlier-dated change."""
    story = founding() + [
        signed(member("m-li-2", "2026-11-20T00:00:00.000Z", "li-kids", key(LI_NEW)), OPERATOR),
        signed(member("m-li-3", "2026-11-15T00:00:00.000Z", "li-kids", key(LI_NEWER)), OPERATOR),
        signed(click("c-first-key-before", "2026-11-14T00:00:00.000Z"), LI),
        signed(click("c-first-key-between", "2026-11-16T00:00:00.000Z"), LI),
        signed(click("c-second-key-before", "2026-11-14T00:00:01.000Z"), LI_NEW),
        signed(click("c-second-key-between", "2026-11-16T00:00:01.000Z"), LI_NEW),
        signed(click("c-third-key", "2026-11-01T10:00:00.000Z"), LI_NEWER)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[6:]) == [None, BAD_SIGNATURE, None, BAD_SIGNATURE, None]


def test_a_refused_member_event_does_not_change_the_shops_key():
    story = founding() + [signed(member("m-li-2", "2026-11-10T00:00:00.000Z", "li-kids", key(STRANGER)), STRANGER),
                          signed(click("c-1", "2026-11-11T00:00:00.000Z"), STRANGER),
                          signed(click("c-2", "2026-11-11T00:00:01.000Z"), LI)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [BAD_SIGNATURE, BAD_SIGNATURE, None]


def test_a_member_event_without_a_key_keeps_the_shops_key():
    story = founding() + [signed(member("m-li-2", "2026-11-10T00:00:00.000Z", "li-kids", status="suspended"),
                                 OPERATOR),
                          signed(member("m-li-3", "2026-11-12T00:00:00.000Z", "li-kids"), OPERATOR),
                          signed(click("c-1", "2026-11-13T00:00:00.000Z"), LI)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [None, None, None]


def test_a_shop_without_a_published_key_cannot_sign():
    story = founding() + [signed(member("m-zhang", "2026-11-02T00:00:00.000Z", "zhang-toys"), OPERATOR),
                          signed(click("c-1", "2026-11-03T00:00:00.000Z", referrer="zhang-toys"), STRANGER)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [None, BAD_SIGNATURE]
    assert "no key" in outcomes[5].detail


def test_bad_signature_is_checked_before_the_period_is_closed():
    story = founding() + [signed(close("x-1", "2026-12-01T00:00:00.000Z", "2026-11-30T15:59:59.999Z"), OPERATOR),
                          record(click("c-unsigned-closed", "2026-11-05T00:00:00.000Z")),
                          signed(click("c-signed-closed", "2026-11-05T00:00:00.000Z"), LI)]
    _, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [None, BAD_SIGNATURE, PERIOD_CLOSED]


def test_a_redelivery_is_compared_without_its_signature_after_the_signature_check():
    first = signed(click("c-1", "2026-11-09T00:00:00.000Z"), LI)
    rotation = signed(member("m-li-2", "2026-11-10T00:00:00.000Z", "li-kids", key(LI_NEW)), OPERATOR)
    resigned = signed(click("c-1", "2026-11-09T00:00:00.000Z"), LI_NEW)
    assert resigned["signature"] != first["signature"]
    unsigned = record(click("c-1", "2026-11-09T00:00:00.000Z"))
    _, outcomes = fold_story(founding() + [first, rotation, resigned, unsigned])
    assert reasons(outcomes[4:]) == [None, None, None, BAD_SIGNATURE]
    assert outcomes[6].skipped  # the same click under another valid signature: an identical re-delivery


def test_a_verdict_reached_ahead_counts_only_for_a_key_the_fold_requires():
    """The decode step verifies ahead against the key it expects; the fold trusts that verdict
    only for a key it requires itself, and checks again otherwise."""
    fold, _ = fold_story(founding())
    wrong = record(click("c-1", "2026-11-01T10:00:00.000Z"))
    claimed = Signature("c2lnbmF0dXJl", b"{}", key(STRANGER), True)
    assert fold.apply(wrong, signed=claimed).quarantine == BAD_SIGNATURE
    good = signed(click("c-2", "2026-11-01T10:00:01.000Z"), LI)
    unverified = Signature(good["signature"], fold.signatures.message(good), key(STRANGER), False)
    assert fold.apply(good, signed=unverified).quarantine is None


def test_a_signature_left_untried_under_the_expected_key_is_verified_by_the_fold():
    """The decode step may leave a signature to the fold with the key it expected, not tried
    (the fold process verifies it then): the fold must try that very key, not skip it as failed."""
    fold, _ = fold_story(founding())
    good = signed(click("c-1", "2026-11-01T10:00:00.000Z"), LI)
    untried = Signature(good["signature"], fold.signatures.message(good), key(LI))
    assert fold.apply(good, signed=untried).quarantine is None
    forged = signed(click("c-2", "2026-11-01T10:00:01.000Z"), STRANGER)
    untried = Signature(forged["signature"], fold.signatures.message(forged), key(LI))
    assert fold.apply(forged, signed=untried).quarantine == BAD_SIGNATURE


def test_the_fold_process_verifies_the_chunks_left_to_it_before_folding_them():
    """A job whose signatures the decode step left untried: the fold process's threads verify
    them a chunk at a time, and each item is folded only once its chunk's verdicts are in, so the
    outcomes are those of a fold verifying every signature itself."""
    from refledger.consumers.folding import FoldItem, LogFold, fold_items
    from refledger.consumers import verification
    from refledger.consumers.verification import Ed25519Check, VerdictsInFold, signed_fold

    class Counted(Ed25519Check):
        calls = 0

        def verify(self, public_key, signature, message):
            Counted.calls += 1
            return super().verify(public_key, signature, message)

    story = founding() + [signed(click(f"c-{n}", f"2026-11-01T10:00:{n % 60:02d}.{n // 60:03d}Z"),
                                 LI if n % 7 else STRANGER) for n in range(300)]
    check = signed_fold().signatures

    def items():
        return [FoldItem("t", 0, offset, "", None, r, None,
                         None if r.get("signature") is None else
                         Signature(r["signature"], check.message(r), key(LI) if r["type"] == "click" else None))
                for offset, r in enumerate(story)]

    verification.CHUNK, chunk = 16, verification.CHUNK
    try:
        left = items()
        verdicts = VerdictsInFold(threads=2)
        verdicts.start(left)
        assert verdicts.waits_from == len(founding())
        ahead = fold_items({("t", 0): LogFold(PartitionFold(Counted()))}, left, verdicts=verdicts)
    finally:
        verification.CHUNK = chunk
    # the clicks' verdicts all came from the threads; the fold verified only what had no key guessed
    assert Counted.calls == len([r for r in founding() if r.get("signature") is not None]) < 5
    itself = fold_items({("t", 0): LogFold(signed_fold())},
                        [item._replace(signed=None) for item in items()])
    assert [(r.item, r.reason) for r in ahead.rejections] == [(r.item, r.reason) for r in itself.rejections]
    assert len(ahead.rejections) == len([n for n in range(300) if n % 7 == 0])
    assert ahead.tables.keys() == itself.tables.keys() and all(
        ahead.tables[name].equals(itself.tables[name]) for name in ahead.tables)


def test_a_fold_built_without_a_check_refuses_to_guess():
    fold = PartitionFold()
    for r in founding()[:3]:
        fold.apply(r)
    with pytest.raises(RuntimeError, match="^this fold was built without a signature check and its log requires "
                                           "signatures$"):
        fold.apply(founding()[3])


def test_a_fold_resumed_from_a_snapshot_keeps_the_policy_and_every_key():
    """A restart loads the partition's snapshot: the policy in force, li-kids's rotated key and
    its old key's grace must come back with it."""
    from refledger.ledger.snapshot import export_state, restore_state
    from refledger.store.snapshots import decode_snapshot, encode_snapshot

    head = founding() + [signed(member("m-li-2", "2026-11-10T00:00:00.000Z", "li-kids", key(LI_NEW)), OPERATOR)]
    tail = [signed(click("c-late-old-key", "2026-11-09T23:00:00.000Z"), LI),
            signed(click("c-after-old-key", "2026-11-11T00:00:00.000Z"), LI),
            signed(click("c-after-new-key", "2026-11-11T00:00:01.000Z"), LI_NEW),
            record(click("c-unsigned", "2026-11-11T00:00:02.000Z")),
            signed(agreement("a-2", "2026-11-12T00:00:00.000Z"), OPERATOR)]
    straight, _ = fold_story(head)
    resumed = signed_fold()
    restore_state(resumed, decode_snapshot(encode_snapshot(export_state(straight))))
    expected = [straight.apply(r) for r in tail]
    assert reasons(expected) == [None, BAD_SIGNATURE, None, BAD_SIGNATURE, None]
    assert [resumed.apply(r) for r in tail] == expected


def test_the_decode_step_expects_the_operator_key_in_force_before_a_policy():
    """Verified ahead against the key the fold will ask for: a policy handing over to a new
    operator key is checked against the old one, so the fold need not verify it again."""
    from refledger.consumers.verification import SignaturesAhead

    ahead = SignaturesAhead(threads=1)
    handover = signed(policy("p-2", "2026-11-05T00:00:00.000Z", True, key(STRANGER)), OPERATOR)
    for r in founding() + [handover]:
        signature = ahead.of_record(r)
    assert signature.key == key(OPERATOR)
    clicked = ahead.of_record(signed(click("c-1", "2026-11-06T00:00:00.000Z"), LI))
    assert clicked.key == key(LI)


def test_a_policy_whose_requirement_is_not_true_or_false_is_schema_invalid():
    unclear = record(policy("p-2", "2026-11-05T00:00:00.000Z", True))
    unclear["policy"] = {**unclear["policy"], "require_signatures": "yes"}  # as a JSON line may carry it
    _, outcomes = fold_story(founding() + [unclear])
    assert outcomes[4].quarantine == "schema_invalid"
    assert outcomes[4].detail == "require_signatures must be true or false, got 'yes'"


def test_a_policy_after_a_close_is_folded_in_log_order():
    """A policy acts in log order (SPEC §9a): one dated inside a closed period still takes effect."""
    story = founding() + [signed(close("x-1", "2026-12-01T00:00:00.000Z", "2026-11-30T15:59:59.999Z"), OPERATOR),
                          signed(policy("p-off", "2026-11-20T00:00:00.000Z", False), OPERATOR),
                          record(click("c-1", "2026-12-02T00:00:00.000Z"))]
    fold, outcomes = fold_story(story)
    assert reasons(outcomes[4:]) == [None, None, None]
    assert not fold.signers.required and fold.signers.policy_id == "p-off"


def test_a_fold_resumed_from_a_snapshot_keeps_every_older_key_after_two_rotations():
    """li-kids changed keys twice before the snapshot: each older key still signs what is dated
    before its own retirement, after the restart as before it."""
    from refledger.ledger.snapshot import export_state, restore_state
    from refledger.store.snapshots import decode_snapshot, encode_snapshot

    head = founding() + [signed(member("m-li-2", "2026-11-10T00:00:00.000Z", "li-kids", key(LI_NEW)), OPERATOR),
                         signed(member("m-li-3", "2026-11-20T00:00:00.000Z", "li-kids", key(LI_NEWER)), OPERATOR)]
    tail = [signed(click("c-first-key", "2026-11-09T00:00:00.000Z"), LI),
            signed(click("c-second-key", "2026-11-19T00:00:00.000Z"), LI_NEW),
            signed(click("c-first-key-too-late", "2026-11-11T00:00:00.000Z"), LI),
            signed(click("c-third-key", "2026-11-21T00:00:00.000Z"), LI_NEWER)]
    straight, _ = fold_story(head)
    resumed = signed_fold()
    restore_state(resumed, decode_snapshot(encode_snapshot(export_state(straight))))
    expected = [straight.apply(r) for r in tail]
    assert reasons(expected) == [None, None, BAD_SIGNATURE, None]
    assert [resumed.apply(r) for r in tail] == expected
    # li-kids' and wang-bath's keys in force, and li-kids' two before
    assert resumed.state_size()["signing_keys"] == straight.state_size()["signing_keys"] == 2 + 2
