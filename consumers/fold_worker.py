"""The fold in a child process, so that reading and folding use two cores.

Under one interpreter lock, polling Kafka, decoding, storing and folding all
take turns on one core. `consume` therefore hands the fold to a child
process: the main process polls, decodes, deduplicates and builds the event
rows of batch n+1 while the child folds batch n; the writer thread commits
batch n (events, quarantine rows, entries, decisions, checkpoints, positions)
in one DuckDB transaction once the child's part has come back. The child
never touches the ledger file: it holds one `PartitionFold` per partition,
built from the stored events the parent sends when it first meets the
partition, and it answers each job with the fold's quarantine rows and the
Arrow tables of entries, decisions and checkpoints. The fold is
deterministic, so the ledger is the same entry for entry as with the fold
in-process (`ingest` and `replay` keep it in-process).

The child is `python -m consumers.fold_worker FACTORY`: jobs arrive on its
stdin and answers leave on its stdout, each a length-prefixed pickle. Answers
carry their job's number, so group members committing on their own writer
threads each get their own. The child ends when its stdin closes (the parent
exited or was killed), so a crashed consumer leaves no process behind.
"""

from __future__ import annotations

import gc
import importlib
from contextlib import contextmanager
import os
import pickle
import struct
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from consumers.ledger_rows import LedgerRows
from ledger.fold import NOTHING
from schemas import codec

# The garbage collector's thresholds while consuming (in both processes). Batches in flight
# hold hundreds of thousands of young objects (records, rows, jobs) that live for a few batches
# and die by reference counting; at the default (a collection every 700 allocations) the
# collector walked them over and over, a fifth of the consumer's time by the millionth event.
# Collecting every 100,000 allocations frees the same cycles, later.
COLLECTOR_THRESHOLD = (100_000, 20, 10)

# A stored event as the fold takes it, in-process or in a job for the child: its row in
# EVENT_COLUMNS order, then where it was read ("" for topic:partition:offset), its decoded record
# and, for a view or click, no record but its referrer and placement (the rest of what the fold
# needs is in the row). The child decodes nothing. Its quarantine rows name the event by its index
# in the job where the raw bytes go: the parent, which holds them, puts them back.
POSITION, RECORD, REFERRER, PLACEMENT = 16, 17, 18, 19
Job = list[tuple]


class FoldWorkerError(RuntimeError):
    """The fold process failed or went away."""


@dataclass
class FoldResult:
    quarantine: list[tuple]            # add_quarantine arguments, in order
    tables: dict[str, pa.Table]        # entries, decisions, checkpoints
    entries_posted: int


@contextmanager
def folding_collector():
    """For folding batch after batch in this process (`ingest`, `replay`): the collector's
    thresholds of `consume`, and a ``settle()`` to call after each batch that freezes what is
    alive (the folds' state, which only grows) out of later collections, as the fold process
    does after each job. On leaving, everything frozen goes back to the collector."""
    previous = gc.get_threshold()
    gc.set_threshold(*COLLECTOR_THRESHOLD)
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)


def rebuilt_fold(fold_factory, stored):
    """A partition's fold state, from its stored events (their entries are in the ledger already)."""
    fold = fold_factory()
    for avro in stored:
        fold.apply(codec.decode(avro))
    return fold


def fold_record(fold, topic: str, partition: int, where: str, raw: "bytes | int", quarantine: list,
                rows: LedgerRows, event: tuple) -> None:
    """Fold one stored event and collect what it writes (the same in-process and in the child).

    ``event`` is laid out as described above (POSITION, RECORD, …): a view or click is folded
    from its fields with ``PartitionFold.apply_traffic``, anything else from its record.
    ``raw`` goes into its quarantine rows as it is.
    """
    record = event[RECORD]
    if record is None:
        kind, event_id = event[4], event[3]
        outcome = fold.apply_traffic(kind, event_id, event[5], event[6], event[7], event[REFERRER], event[8],
                                     event[PLACEMENT])
    else:
        outcome, kind, event_id = fold.apply(record), record["type"], record["event_id"]
    if outcome is NOTHING and kind != "settlement":
        return  # most views and many clicks: nothing to write
    offset = event[2]
    if outcome.quarantine is not None:
        quarantine.append((topic, partition, offset, where, event_id, outcome.quarantine,
                           getattr(outcome, "detail", None) or outcome.quarantine, "fold", raw))
    rows.add(topic, partition, outcome)
    if kind == "settlement" and outcome.quarantine is None:
        rows.checkpoint(topic, partition, event_id, record["settlement"]["period_end"],
                        fold.journal.seq, fold.chain_head)
    for late_id, reason in getattr(outcome, "late_quarantines", ()):
        quarantine.append((topic, partition, offset, where, late_id, reason,
                           f"event {late_id}, folded earlier, rejected when {event_id} arrived", "fold", b""))


def _serve(jobs, results, fold_factory) -> None:
    folds: dict[tuple[str, int], object] = {}
    gc.set_threshold(*COLLECTOR_THRESHOLD)  # a job's rows are young objects by the hundred thousand
    while True:
        try:
            message = _read(jobs)
        except EOFError:
            return  # the parent is gone
        kind = message[0]
        if kind == "stop":
            return
        try:
            if kind == "init":
                _, topic, partition, stored = message
                folds[(topic, partition)] = rebuilt_fold(fold_factory, stored)
            elif kind == "fold":
                _, job_id, items = message
                quarantine: list[tuple] = []
                rows = LedgerRows()
                for index, event in enumerate(items):
                    topic, partition = event[0], event[1]
                    fold_record(folds[(topic, partition)], topic, partition,
                                event[POSITION] or f"{topic}:{partition}:{event[2]}", index, quarantine, rows, event)
                _write(results, (job_id, "ok", quarantine, rows.tables(), rows.entry_count))
                # The fold's state only grows and holds millions of objects; without this every
                # full collection walks all of them again. What a job leaves behind is freed by
                # reference counting (it builds no cycles), so nothing is kept that should go.
                gc.freeze()
        except Exception:  # report it; the parent decides (a fold never raises for bad data)
            _write(results, (message[1] if kind == "fold" else None, "error", traceback.format_exc()))


_LENGTH = struct.Struct("<Q")


def _write(stream, message) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(body)))
    stream.write(body)
    stream.flush()


def _read_exactly(stream, n: int) -> bytes:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read(stream):
    (n,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return pickle.loads(_read_exactly(stream, n))


def _factory_name(factory) -> str:
    return f"{factory.__module__}:{factory.__qualname__}"


def _load_factory(name: str):
    module, _, qualname = name.partition(":")
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class FoldWorker:
    """The parent's handle on the fold process (`python -m consumers.fold_worker`)."""

    def __init__(self, fold_factory):
        # the child imports what the parent imports, from the same places
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(p for p in [root, *sys.path] if p)))
        self._process = subprocess.Popen([sys.executable, "-m", "consumers.fold_worker", _factory_name(fold_factory)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._jobs = self._process.stdin
        self._results = self._process.stdout
        self._known: set[tuple[str, int]] = set()
        self._next_job = 0
        self._answers: dict[int, tuple] = {}
        self._receive_lock = threading.Lock()

    def knows(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._known

    def init_partition(self, topic: str, partition: int, stored: list[bytes]) -> None:
        """Build the partition's fold from its stored log (before any job names it)."""
        self._send(("init", topic, partition, stored))
        self._known.add((topic, partition))

    def submit(self, items: Job) -> int:
        job_id = self._next_job
        self._next_job += 1
        self._send(("fold", job_id, items))
        return job_id

    def result(self, job_id: int) -> FoldResult:
        """Wait for the answer to one job (answers to other jobs are kept for their askers)."""
        with self._receive_lock:
            while job_id not in self._answers:
                try:
                    answer = _read(self._results)
                except (EOFError, OSError) as exc:
                    raise FoldWorkerError(f"the fold process ended (exit code {self._process.poll()})") from exc
                if answer[1] == "error" and answer[0] is None:
                    raise FoldWorkerError(f"the fold process failed:\n{answer[2]}")
                self._answers[answer[0]] = answer
            answer = self._answers.pop(job_id)
        if answer[1] == "error":
            raise FoldWorkerError(f"the fold process failed:\n{answer[2]}")
        _, _, quarantine, tables, entries = answer
        return FoldResult(quarantine, tables, entries)

    def _send(self, message) -> None:
        try:
            _write(self._jobs, message)
        except (BrokenPipeError, OSError) as exc:
            raise FoldWorkerError(f"the fold process ended (exit code {self._process.poll()})") from exc

    def close(self) -> None:
        try:
            _write(self._jobs, ("stop",))
            self._jobs.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._results.close()


def main() -> None:
    """The child: jobs on stdin, answers on stdout (print goes to stderr, not into the answers)."""
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, results, _load_factory(sys.argv[1]))


if __name__ == "__main__":
    main()
