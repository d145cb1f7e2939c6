"""`refledger archive`: copy the event topic's history into Avro files that outlive retention."""

from __future__ import annotations

import time
from pathlib import Path

import click

from refledger.options import bootstrap_option, format_option, kafka_login_option, topic_option
from refledger.render import emit_json, emit_table, progress

COLUMNS = ("partition", "records", "segments", "bytes", "next_offset")
NUMERIC = ("records", "segments", "bytes", "next_offset", "unavailable")


@click.command()
@bootstrap_option
@kafka_login_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Archive directory; the topic's files go to OUT/<topic>/partition-NNNN/.")
@topic_option
@click.option("--segment-records", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Records per segment file before a new one is started.")
@format_option("table", "json")
def archive(bootstrap_servers: str, login, out_dir: Path, topic: str, segment_records: int, fmt: str):
    """Archive the topic's whole history into Avro container files.

    Kafka deletes old records; the archive keeps every one of them, value
    undecoded, byte for byte, one directory per partition, so the ledger can
    be rebuilt from it later. Running again appends only what is new since
    the last run; an interrupted run loses only its unfinished segments,
    which the next run writes again, never twice.

    Example: refledger archive --bootstrap-servers 127.0.0.1:9092 --out ./archive
    """
    from refledger.replay.archive import archive_topic

    with progress() as bar:
        task = bar.add_task(f"archiving {topic}", total=None, rate="")
        started = time.monotonic()

        def show(step) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, total=step.offsets_total, completed=step.offsets_done,
                       rate=f"{step.records / elapsed:,.0f} rec/s")

        summary = archive_topic(bootstrap_servers, topic, out_dir, segment_records=segment_records,
                                on_progress=show, login=login)
    _render(summary, fmt)


def _render(summary, fmt: str) -> None:
    if fmt == "json":
        emit_json(summary.as_dict())
        return
    rows = [p.as_dict() for p in summary.partitions]
    rows.append({"partition": "total", "records": summary.records, "segments": summary.segments,
                 "bytes": summary.bytes})
    columns = COLUMNS + (("unavailable",) if any(p.unavailable for p in summary.partitions) else ())
    emit_table(rows, columns, numeric=NUMERIC, title=f"archived {summary.topic} in {summary.seconds:.1f}s")
    click.echo(f"archive: {summary.directory}")
