"""The hot path's compiled modules (refledger/compiled.py): built by the install, used only while
built from the source as it is, and giving the very answers the source gives."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from refledger import compiled
from refledger.compiled import ACCELERATED, DIGEST_SUFFIX, PURE_VARIABLE, CompiledWhenCurrent, compiled_modules

ROOT = Path(__file__).resolve().parents[1]


def test_the_install_compiled_every_module_of_the_hot_path_and_they_are_the_ones_running():
    for name in ACCELERATED:
        module = importlib.import_module(name)
        assert module.__file__.endswith(".so"), f"{name} runs from {module.__file__}"
    assert compiled_modules() == sorted(ACCELERATED)
    for name in ACCELERATED:  # named so that Python's own finder never loads one without the check
        package, _, leaf = name.rpartition(".")
        folder = os.path.dirname(importlib.import_module(package).__file__)
        assert importlib.machinery.PathFinder.find_spec(name, [folder]).origin.endswith(f"{leaf}.py")


def _one_module_laid_out(tmp_path, leaf="traffic"):
    """A copy of one compiled module beside its source and the digest it was built from."""
    module = importlib.import_module(f"refledger.schemas.{leaf}")
    built = Path(module.__file__)
    folder = tmp_path / "schemas"
    folder.mkdir()
    shutil.copy(ROOT / "schemas" / f"{leaf}.py", folder)
    if (ROOT / "schemas" / f"{leaf}.pxd").exists():
        shutil.copy(ROOT / "schemas" / f"{leaf}.pxd", folder)
    shutil.copy(built, folder)
    shutil.copy(built.parent / f"{leaf}{DIGEST_SUFFIX}", folder)
    return folder


def test_a_compiled_module_runs_only_while_its_source_is_the_one_it_was_built_from(tmp_path, monkeypatch):
    monkeypatch.delenv(PURE_VARIABLE, raising=False)
    folder = _one_module_laid_out(tmp_path)
    finder = CompiledWhenCurrent()
    name = "refledger.schemas.traffic"

    assert finder.find_spec(name, [str(folder)]).origin.endswith(".so")

    source = folder / "traffic.py"
    source.write_text(source.read_text() + "\n# a rule changed after the build\n")
    assert finder.find_spec(name, [str(folder)]).origin == str(source)

    source.write_text((ROOT / "schemas" / "traffic.py").read_text())  # the source back as built
    assert finder.find_spec(name, [str(folder)]).origin.endswith(".so")

    types = folder / "traffic.pxd"  # the C types the build gave its locals are part of the source
    types.write_text(types.read_text() + "\n# a type changed after the build\n")
    assert finder.find_spec(name, [str(folder)]).origin == str(source)
    types.write_text((ROOT / "schemas" / "traffic.pxd").read_text())
    assert finder.find_spec(name, [str(folder)]).origin.endswith(".so")

    (folder / f"traffic{DIGEST_SUFFIX}").unlink()  # built by hand, from no known source
    assert finder.find_spec(name, [str(folder)]).origin == str(source)


def test_pure_python_on_request_and_other_modules_left_to_python(tmp_path, monkeypatch):
    folder = _one_module_laid_out(tmp_path)
    finder = CompiledWhenCurrent()
    monkeypatch.setenv(PURE_VARIABLE, "1")
    assert finder.find_spec("refledger.schemas.traffic", [str(folder)]).origin == str(folder / "traffic.py")
    monkeypatch.delenv(PURE_VARIABLE)
    assert finder.find_spec("refledger.ledger.fold", [str(ROOT / "ledger")]) is None  # not compiled
    # before Python's path finder, after any hook put before it (atheris's instruments what it names)
    assert sys.meta_path.index(compiled.FINDER) == sys.meta_path.index(importlib.machinery.PathFinder) - 1


_DECODE_A_STREAM = r"""
import json, random, sys
from refledger.compiled import compiled_modules
from refledger.consumers.batch import LogProcessor, PendingBatch
import refledger.consumers.fold_worker  # noqa: F401 (one of the compiled modules)
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from refledger.consumers.kafka_records import read_records
from refledger.consumers.verification import signed_fold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas import codec
from refledger.schemas.messages import AVRO, Message
from refledger.store.ledger_file import BatchWrite, LedgerStore
from refledger.store.columns import EVENT_COLUMNS, arrow_rows

rng = random.Random(7)
values = [codec.encode(event) for event in simulate(SimulationConfig(seed=3, events=1500, bad_rate=0.05))]
damaged = []
for value in values[:300]:
    flipped = bytearray(value)
    flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    damaged.append(bytes(flipped))
    damaged.append(value[: rng.randrange(len(value))])
messages = [Message("t", 0, offset, value, AVRO, 0) for offset, value in enumerate(values + damaged)]
store = LedgerStore(sys.argv[1])
processor = LogProcessor(store, signed_fold, source="test")
pending = PendingBatch(BatchWrite(source="test"))
items = processor.decode_messages(messages, pending, False)
batch = pending.write
builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 22)  # the stream as Kafka fetches it
for offset, value in enumerate(values[:400]):
    builder.append(offset, timestamp=1796307701954 + offset * 977, key=None, value=value,
                   headers=[("h", b"v")] if offset % 5 == 0 else [])
fetched = bytes(builder.build())
reads = []
for n in range(300):
    flipped = bytearray(fetched)
    flipped[rng.randrange(61, len(flipped))] ^= 1 << rng.randrange(8)
    damaged_batch = bytes(flipped) if n % 3 else fetched[:rng.randrange(61, len(fetched))]
    kafka_batch = DefaultRecordBatch(damaged_batch)
    records, size, damage = read_records(damaged_batch, 61, kafka_batch.records_count, "t", 0, 0, 0,
                                         kafka_batch.first_timestamp, None, 0)
    reads.append([len(records), size, repr(records[-1:]), repr(damage)])
print(json.dumps({
    "compiled": compiled_modules(),
    "kafka_reads": reads,
    "items": [repr(tuple(item)) for item in items],
    "events": arrow_rows(batch.events, EVENT_COLUMNS).to_pylist(),
    "quarantined": {name: [repr(v) for v in column] for name, column in batch.quarantine.items()},
}, default=lambda v: v.hex() if isinstance(v, bytes) else repr(v)))
processor.close()
store.close()
"""


def test_compiled_and_source_decode_a_damaged_stream_alike(tmp_path):
    """The same batch of simulated events, bit flips and truncations decoded twice: by the compiled
    modules and by their source. Every fold item, stored row and quarantine row is the same, and
    so is every record read from a damaged Kafka batch of them."""
    answers = {}
    for how, pure in (("compiled", ""), ("source", "1")):
        env = {**os.environ, PURE_VARIABLE: pure}
        done = subprocess.run([sys.executable, "-c", _DECODE_A_STREAM, str(tmp_path / f"{how}.duckdb")],
                              env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
        answers[how] = json.loads(done.stdout)
    assert answers["compiled"].pop("compiled") == sorted(ACCELERATED)
    assert answers["source"].pop("compiled") == []
    assert len(answers["source"]["items"]) > 1500
    assert len(answers["source"]["quarantined"]["reason"]) > 300
    assert sum(damage != "None" for _n, _s, _r, damage in answers["source"]["kafka_reads"]) > 100
    assert answers["compiled"] == answers["source"]
