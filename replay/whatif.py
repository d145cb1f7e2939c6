"""What-if agreements: the history replayed with other agreement versions.

A what-if file is JSON Lines of `agreement` events (SPEC §2). Each one

* **replaces** the log's agreement event with the same `event_id`, or else
  with the same (`agreement_id`, `version`), in place, in every partition
  that holds it: the log is what it was, except that this version said
  something else; or, when it matches none,
* is **added** at the start of every partition's log, as if the alliance
  had published it before anything else happened. Orders and clicks are
  then priced by it wherever it resolves (SPEC §5), settlements settle what
  it earned, and nothing about the order of the rest of the log changes.

The fold judges what-if events like any other: an `effective_from` before
the event's own `occurred_at` is still a `retroactive_agreement` and
changes nothing; the report lists such events.

Injected and replacing messages keep the offset of the message they stand
before or for, so positions stay comparable with the live ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from refledger.schemas.messages import JSON, Message, decode_message
from refledger.replay.history import LogRead, ReplayError
from refledger.schemas import codec


@dataclass(frozen=True, slots=True)
class WhatIfAgreement:
    """One line of a what-if file."""

    position: str          # FILE:LINE
    event_id: str
    agreement_id: str
    version: int
    value: bytes           # the JSON line as written


@dataclass
class WhatIfUse:
    """Where one what-if agreement went in the replayed log."""

    agreement: WhatIfAgreement
    replaced: set[str] = field(default_factory=set)        # event ids of the log's versions it replaced
    logs: set[tuple[str, int]] = field(default_factory=set)

    @property
    def action(self) -> str:
        return "replaced" if self.replaced else "added"

    def as_dict(self) -> dict:
        a = self.agreement
        return {"position": a.position, "event_id": a.event_id, "agreement_id": a.agreement_id,
                "version": a.version, "action": self.action, "replaced_event_ids": sorted(self.replaced),
                "logs": len(self.logs)}


def read_agreements(path: str | Path) -> tuple[WhatIfAgreement, ...]:
    """The agreement events of a what-if file; anything else in it is an error naming the line."""
    path = Path(path)
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from exc
    found: list[WhatIfAgreement] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            record = codec.record_from_json(line)
        except codec.CodecError as exc:
            raise ReplayError(f"{where}: {exc.reason}: {exc}") from exc
        if record["type"] != "agreement":
            raise ReplayError(f"{where}: a {record['type']} event; a what-if file holds agreement events only")
        body = record["agreement"]
        found.append(WhatIfAgreement(where, record["event_id"], body["agreement_id"], body["version"], line))
    if not found:
        raise ReplayError(f"{path}: no agreement events")
    _check_distinct(found)
    return tuple(found)


def _check_distinct(agreements: list[WhatIfAgreement]) -> None:
    seen_ids: dict[str, str] = {}
    seen_versions: dict[tuple[str, int], str] = {}
    for a in agreements:
        for seen, key, what in ((seen_ids, a.event_id, f"event id {a.event_id}"),
                                (seen_versions, (a.agreement_id, a.version),
                                 f"agreement {a.agreement_id} version {a.version}")):
            if key in seen:
                raise ReplayError(f"{a.position}: {what} is already given at {seen[key]}")
            seen[key] = a.position


class WhatIf:
    """Rewrites a stream of log reads: replaces matching agreement events, adds the others.

    Which log events a what-if version replaces is decided up front from the
    agreement events the live ledger stored (`log_agreements`, records), so
    an added version is known to be one before the first partition starts.
    """

    def __init__(self, agreements: Iterable[WhatIfAgreement], log_agreements: Iterable[dict]):
        self.uses = [WhatIfUse(a) for a in agreements]
        by_event_id = {u.agreement.event_id: u for u in self.uses}
        by_version = {(u.agreement.agreement_id, u.agreement.version): u for u in self.uses}
        # a log event is its id and its time: after a close an id may come back on another event (SPEC §9a)
        self._replacing: dict[tuple[str, int], WhatIfUse] = {}
        for record in log_agreements:
            body = record["agreement"]
            use = by_event_id.get(record["event_id"]) or by_version.get((body["agreement_id"], body["version"]))
            if use is not None:
                use.replaced.add(record["event_id"])
                self._replacing[(record["event_id"], record["occurred_at"])] = use
        self._added = [u for u in self.uses if not u.replaced]
        # a message can only be replaced when its event id occurs in its bytes (Avro and JSON keep strings
        # as UTF-8), so only those few messages are decoded
        self._needles = tuple({event_id.encode("utf-8") for event_id, _at in self._replacing})

    def positions(self) -> set[str]:
        return {u.agreement.position for u in self.uses}

    def apply(self, reads: Iterable[LogRead]) -> Iterator[LogRead]:
        started: set[tuple[str, int]] = set()
        for read in reads:
            msg = read.message
            key = (msg.topic, msg.partition)
            if key not in started:
                started.add(key)
                for use in self._added:
                    use.logs.add(key)
                    yield LogRead(self._message(use, msg), read.log_time)
            use = self._match(msg)
            if use is None:
                yield read
            else:
                use.logs.add(key)
                yield LogRead(self._message(use, msg), read.log_time)

    def _match(self, msg: Message) -> WhatIfUse | None:
        value = msg.value
        if not any(needle in value for needle in self._needles):
            return None
        try:
            record = decode_message(msg)
        except codec.CodecError:
            return None
        if record["type"] != "agreement":
            return None
        return self._replacing.get((record["event_id"], record["occurred_at"]))

    @staticmethod
    def _message(use: WhatIfUse, at: Message) -> Message:
        return Message(at.topic, at.partition, at.offset, use.agreement.value, JSON, at.timestamp,
                       use.agreement.position)
