"""The fold in a child process, so that reading and folding use two cores.

Under one interpreter lock, polling Kafka, decoding, storing and folding all
take turns on one core. `consume` therefore hands the fold to a child
process: the main process polls, decodes, deduplicates and builds the event
rows of batch n+1 while the child folds batch n; the writer thread commits
batch n (events, quarantine rows, entries, decisions, checkpoints, positions)
in one DuckDB transaction once the child's part has come back. The child
never touches the ledger file: it holds one `PartitionFold` per partition,
built from the stored events the parent sends when it first meets the
partition, and it answers each job (a list of `FoldItem`s) with the
`FoldResult` of `consumers.folding.fold_items`, the very function the
in-process backend calls, so the ledger is the same entry for entry
(`ingest` and `replay` fold in-process).

The child is `python -c 'from refledger.consumers.fold_worker import main; main()' FACTORY`
(this module's `main`): jobs arrive on its
stdin and answers leave on its stdout, each a length-prefixed pickle. Answers
carry their job's number, so group members committing on their own writer
threads each get their own. The child ends when its stdin closes (the parent
exited or was killed), so a crashed consumer leaves no process behind.
"""

from __future__ import annotations

import gc
import importlib
import io
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import traceback

from refledger.consumers.folding import (
    COLLECTOR_THRESHOLD, SNAPSHOT_EVERY, FoldItem, FoldResult, StoredEvent, fold_items, rebuilt_fold,
)
from refledger.consumers.heap import keep_large_blocks_apart
from refledger.consumers.verification import VerdictsInFold
from refledger.ledger.events import Click, View
from refledger.ledger.signers import Signature


class FoldWorkerError(RuntimeError):
    """The fold process failed or went away."""


def _answer_jobs(jobs, results, fold_factory, snapshot_every: int) -> None:
    folds: dict[tuple[str, int], object] = {}
    verdicts = VerdictsInFold()  # the signatures the decode step left to this process
    gc.set_threshold(*COLLECTOR_THRESHOLD)  # a job's rows are young objects by the hundred thousand
    received = _read_ahead(jobs)
    answers = _Answers(results)
    while True:
        body = received.get()
        if body is None:
            return  # the parent is gone
        message = pickle.loads(body)
        kind = message[0]
        if kind == "stop":
            return
        try:
            if kind == "load":
                _, topic, partition, stored, snapshot = message
                folds[(topic, partition)] = rebuilt_fold(fold_factory, stored, f"{topic}:{partition}", snapshot)
            elif kind == "fold":
                _, job_id, rows = message
                items = items_from_wire(rows)
                verdicts.start(items)
                result = fold_items(folds, items, snapshot_every, verdicts)
                answers.put((job_id, "ok", result))
                # The fold's state only grows and holds millions of objects; without this every
                # full collection walks all of them again. What a job leaves behind is freed by
                # reference counting (it builds no cycles), so nothing is kept that should go.
                gc.freeze()
        except Exception:  # report it; the parent decides (a fold never raises for bad data)
            answers.put((message[1] if kind == "fold" else None, "error", traceback.format_exc()))


# Both pipes are served by threads of their own, so that no process waits on another while it could
# work: the parent's write of the next job returns as soon as this process has the bytes, though the
# job before is still folding, and an answer waits to be read by the parent's writer (busy with DuckDB)
# while the next job folds. Pickling and unpickling stay on the fold's thread; the threads only move
# bytes, with the interpreter lock let go. What waits here is bounded by the two queues: one job read
# ahead, two answers not yet taken (beyond that, the pipes hold the parent up, as before).
def _read_ahead(stream) -> queue.Queue:
    """The jobs' bytes as they arrive, one job read ahead of the fold; None once the parent is gone
    (or the reading failed, its traceback on stderr: the fold then ends, and the parent hears of it)."""
    bodies: queue.Queue = queue.Queue(maxsize=1)

    def read() -> None:
        try:
            while True:
                bodies.put(_read_body(stream))
        except (EOFError, OSError):
            pass  # the parent is gone (killed, or stopped without a word)
        except BaseException:
            traceback.print_exc()
        finally:
            bodies.put(None)

    threading.Thread(target=read, name="fold-jobs", daemon=True).start()
    return bodies


class _Answers:
    """Answers pickled on the fold's thread and written, in order, by a thread of their own."""

    def __init__(self, stream, waiting: int = 2):
        self._bodies: queue.Queue = queue.Queue(maxsize=waiting)
        threading.Thread(target=self._send, args=(stream,), name="fold-answers", daemon=True).start()

    def put(self, message) -> None:
        self._bodies.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def _send(self, stream) -> None:
        while True:
            body = self._bodies.get()
            try:
                _write_body(stream, body)
            except OSError:  # the parent is gone (a broken pipe): nothing left to answer, and no one to tell
                os._exit(0)
            except BaseException:  # no answer can go out: end, so the parent hears of it, not wait forever
                traceback.print_exc()
                os._exit(1)


# The pipe carries a job's FoldItems as plain tuples in FoldItem's field order, a view's or click's
# event as the tuple of its fields with its type first: pickle writes and reads plain tuples in C,
# named tuples through Python calls (four times the cost, for the half-million items a minute the
# fold process takes); a signature goes as the tuple of its fields. Both ends name them again at once.
_TRAFFIC = {"view": View, "click": Click}


def items_to_wire(items: list[FoldItem]) -> list[tuple]:
    return [(i.topic, i.partition, i.offset, i.position, None if i.event is None else (i.event.type,) + i.event,
             i.record, i.content, None if i.signed is None else i.signed.fields()) for i in items]


def items_from_wire(rows: list[tuple]) -> list[FoldItem]:
    new, traffic = tuple.__new__, _TRAFFIC
    return [new(FoldItem, (t, p, o, pos, None if ev is None else new(traffic[ev[0]], ev[1:]), rec, content,
                           None if signed is None else Signature(*signed)))
            for t, p, o, pos, ev, rec, content, signed in rows]


_LENGTH = struct.Struct("<Q")


def _write(stream, message) -> None:
    """A job to the fold process. A job is plain tuples, strings, numbers and bytes, none holding
    itself: pickled without the memo (``Pickler.fast``), which would record every string of every
    item to find it again (about four times faster on a batch of views and clicks, for 8 % more
    bytes; reading them back costs the fold process 1 µs an item more, and it has time to spare)."""
    body = io.BytesIO()
    pickler = pickle.Pickler(body, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        pickler.fast = True  # (documented as deprecated, kept by every CPython 3 so far)
    except AttributeError:
        pass  # a Python without it: the memo, and the same bytes read back
    pickler.dump(message)
    _write_body(stream, body.getbuffer())


def _write_body(stream, body) -> None:
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
    return pickle.loads(_read_body(stream))


def _read_body(stream) -> bytes:
    (n,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return _read_exactly(stream, n)


def _factory_name(factory) -> str:
    return f"{factory.__module__}:{factory.__qualname__}"


def _load_factory(name: str):
    module, _, qualname = name.partition(":")
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class ChildProcessFolds:
    """The folds in a child process (this module's `main`): a
    `consumers.folding.FoldBackend`."""

    def __init__(self, fold_factory, snapshot_every: int = SNAPSHOT_EVERY):
        # (`-c`, not `-m`: this module may run compiled, and runpy runs only Python source)
        self._process = subprocess.Popen([sys.executable, "-c", f"from {__name__} import main; main()",
                                          _factory_name(fold_factory), str(snapshot_every)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._jobs = self._process.stdin
        self._results = self._process.stdout
        self._known: set[tuple[str, int]] = set()
        self._next_job = 0
        self._answers: dict[int, tuple] = {}
        self._receive_lock = threading.Lock()

    def knows(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._known

    def load(self, topic: str, partition: int, stored: list[StoredEvent], snapshot: bytes | None = None) -> None:
        """Build the partition's fold from its latest snapshot and stored log (before any job names it)."""
        self._send(("load", topic, partition, stored, snapshot))
        self._known.add((topic, partition))

    def submit(self, items: list[FoldItem]) -> int:
        job_id = self._next_job
        self._next_job += 1
        self._send(("fold", job_id, items_to_wire(items)))
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
        return answer[2]

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
    keep_large_blocks_apart()  # the jobs' pickles, megabytes each, kept from growing the heap (consumers.heap)
    _answer_jobs(sys.stdin.buffer, results, _load_factory(sys.argv[1]), int(sys.argv[2]))
    # Done (told to stop, or the parent is gone). Ended here, not by the interpreter's shutdown, which
    # would wait on the reading thread's hold of stdin; every answer written went out with its flush.
    os._exit(0)


if __name__ == "__main__":
    main()
