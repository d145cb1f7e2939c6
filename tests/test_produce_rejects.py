"""`produce` rejects an event the topic cannot take like any other bad line, and goes on.

A shop integration's file may hold an event larger than the broker accepts
in one message (a placement id pasted with a whole page in it). That line is
listed with its file and line and the reason, exit status 1, and every
other line is published: the settlement after it too, so the month still
closes with the right balances.
"""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from kafka.admin import NewTopic

from refledger.cli import cli
from refledger.producers.kafka_admin import admin_client
from tests.pipeline_support import SCENARIOS
from tests.test_scenarios_cli import nonzero

pytestmark = pytest.mark.kafka

BABY_CARE = SCENARIOS / "baby-care.jsonl"


def _topic(bootstrap: str, max_message_bytes: int | None) -> str:
    name = f"oversize-{uuid.uuid4().hex[:10]}"
    configs = {"max.message.bytes": str(max_message_bytes)} if max_message_bytes else {}
    with admin_client(bootstrap) as admin:
        admin.create_topics([NewTopic(name, 6, 1, topic_configs=configs)])
    return name


@pytest.mark.parametrize("limit, placement_chars", [(20_000, 50_000), (None, 2 * 1024 * 1024)],
                         ids=["a topic that takes 20 kB", "the broker's default of 1 MB"])
def test_an_event_over_the_message_size_is_rejected_and_the_rest_published(kafka_bootstrap, tmp_path, limit,
                                                                          placement_chars):
    topic = _topic(kafka_bootstrap, limit)
    lines = BABY_CARE.read_text(encoding="utf-8").splitlines()
    first_click = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "click")
    huge = json.loads(lines[first_click])
    huge["event_id"] = "c-huge"
    huge["click"]["placement_id"] = "p" * placement_chars
    lines.insert(first_click + 1, json.dumps(huge))
    source = tmp_path / "with-a-huge-click.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert json.loads(lines[-1])["type"] == "settlement", "the month's settlement comes after the huge line"

    result = CliRunner().invoke(cli, ["produce", str(source), "--bootstrap-servers", kafka_bootstrap,
                                      "--topic", topic, "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert [r["position"] for r in report["rejected_events"]] == [f"{source.name}:{first_click + 2}"]
    assert report["rejected_events"][0]["error"].startswith("too_large:")
    assert report["published"] == len(lines) - 1

    db = tmp_path / "ledger.duckdb"
    consumed = CliRunner().invoke(cli, ["consume", "--bootstrap-servers", kafka_bootstrap, "--db", str(db),
                                        "--topic", topic, "--group", f"{topic}-ledger", "--until-idle", "3",
                                        "--format", "json"])
    assert consumed.exit_code == 0, consumed.output
    balances = json.loads(CliRunner().invoke(cli, ["balances", "--db", str(db), "--format", "json"]).output)
    expected = json.loads((SCENARIOS / "baby-care.expected-balances.json").read_text())
    assert nonzero(balances) == nonzero(expected)
