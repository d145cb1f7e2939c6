"""`refledger broker start --secure`: SASL/SCRAM logins and ACLs on the alliance's topic.

Shop integrations may only write the events topic; the ledger's consumer
group may only read it; the operator may do everything (create topics,
publish settlements, run the tests). Against a real secure broker started
here: an authorised round trip, shop to ledger, with the credentials from
the environment and from flags; and refused clients: a wrong password, a
shop that tries to read, the ledger that tries to write, a client that
does not log in at all.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from refledger import broker, secure_broker
from refledger.cli import cli
from refledger.producers.kafka_admin import partitions_for
from refledger.schemas.kafka_client import ENV_PASSWORD, ENV_USERNAME, KafkaLogin, connect
from tests.pipeline_support import SCENARIOS
from tests.test_scenarios_cli import nonzero

pytestmark = pytest.mark.kafka

BABY_CARE = SCENARIOS / "baby-care.jsonl"
TOPIC = f"secure-events-{uuid.uuid4().hex[:8]}"
GROUP = "ledger-of-baby-care"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    directory = tmp_path_factory.mktemp("secure-broker")
    port = broker.free_port()
    started = CliRunner().invoke(cli, ["broker", "start", "--secure", "--port", str(port), "--dir", str(directory),
                                       "--topic", TOPIC, "--group", GROUP])
    try:
        assert started.exit_code == 0, started.output
        assert "SASL/SCRAM" in started.output and "shop.env" in started.output
        logins = secure_broker.logins(directory)
        yield SimpleNamespace(bootstrap=f"127.0.0.1:{port}", directory=directory, logins=logins,
                              port=port, output=started.output)
    finally:
        CliRunner().invoke(cli, ["broker", "stop", "--port", str(port), "--dir", str(directory)])


def refledger(*args, login: KafkaLogin | None = None, env: dict | None = None, timeout: float = 120):
    """The command line in its own process; ``login`` given as flags, ``env`` as the environment."""
    flags = ["--sasl-username", login.username, "--sasl-password", login.password] if login else []
    command, rest = args[0], [str(a) for a in args[1:]]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REFLEDGER_SASL")}
    environment.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "refledger", command, *rest, *flags], capture_output=True,
                          text=True, timeout=timeout, env=environment)


def as_env(login: KafkaLogin) -> dict:
    return {ENV_USERNAME: login.username, ENV_PASSWORD: login.password}


def refused(result, *words):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    for word in words:
        assert word in last, (word, last)
    return last


def topic_size(secure) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = connect(KafkaConsumer, secure.bootstrap, secure.logins["operator"], group_id=None)
    try:
        parts = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def test_the_operator_finds_the_topic_made_and_each_login_kept_private(secure):
    assert set(secure.logins) == {"operator", "shop", "ledger"}
    assert partitions_for(secure.bootstrap, TOPIC, login=secure.logins["operator"]) == 6
    for path in (secure.directory / "logins").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert f"{ENV_PASSWORD}=" in path.read_text()
    assert stat.S_IMODE((secure.directory / "logins").stat().st_mode) == 0o700
    assert stat.S_IMODE((secure.directory / "server.properties").stat().st_mode) == 0o600
    assert stat.S_IMODE(secure.directory.stat().st_mode) == 0o700, "the topics' data is private too"
    shown = json.loads(CliRunner().invoke(cli, ["broker", "status", "--port", str(secure.port), "--dir",
                                                str(secure.directory), "--format", "json"]).output)
    assert shown["state"] == "running" and shown["secure"] is True


def test_a_shop_publishes_and_the_ledger_folds_with_their_own_logins(secure, tmp_path):
    published = refledger("produce", BABY_CARE, "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC,
                          "--format", "json", env=as_env(secure.logins["shop"]))
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["rejected"] == 0

    db = tmp_path / "ledger.duckdb"
    folded = refledger("consume", "--bootstrap-servers", secure.bootstrap, "--db", db, "--topic", TOPIC,
                       "--group", GROUP, "--until-idle", "3", "--format", "json", login=secure.logins["ledger"])
    assert folded.returncode == 0, folded.stderr
    balances = json.loads(CliRunner().invoke(cli, ["balances", "--db", str(db), "--format", "json"]).output)
    expected = json.loads((SCENARIOS / "baby-care.expected-balances.json").read_text())
    assert nonzero(balances) == nonzero(expected)

    archived = refledger("archive", "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC, "--out",
                         tmp_path / "archive", "--format", "json", env=as_env(secure.logins["ledger"]))
    assert archived.returncode == 0, archived.stderr
    assert sum(p["records"] for p in json.loads(archived.stdout)["partitions"]) == topic_size(secure)


def test_a_wrong_password_is_refused(secure, tmp_path):
    wrong = KafkaLogin(secure.logins["shop"].username, "not-the-password")
    result = refledger("produce", BABY_CARE, "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC,
                       env=as_env(wrong))
    refused(result, "'shop'", "password")


def test_a_client_without_a_login_is_refused(secure):
    result = refledger("produce", BABY_CARE, "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC)
    refused(result, "--sasl-username")


def test_a_shop_may_not_read_the_topic(secure, tmp_path):
    db = tmp_path / "nosy.duckdb"
    result = refledger("consume", "--bootstrap-servers", secure.bootstrap, "--db", db, "--topic", TOPIC,
                       "--group", GROUP, "--until-idle", "3", login=secure.logins["shop"])
    refused(result, "refused")
    archived = refledger("archive", "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC, "--out",
                         tmp_path / "archive", login=secure.logins["shop"])
    refused(archived, "refused")


def test_the_ledger_may_not_write_the_topic(secure, tmp_path):
    before = topic_size(secure)
    result = refledger("produce", BABY_CARE, "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC,
                       login=secure.logins["ledger"])
    refused(result, "refused")
    assert topic_size(secure) == before


def test_a_username_without_a_password_is_a_usage_error(secure):
    result = refledger("produce", BABY_CARE, "--bootstrap-servers", secure.bootstrap, "--sasl-username", "shop")
    assert result.returncode == 2 and "--sasl-password" in result.stderr, result.stderr


def test_the_operator_settles_the_month_and_a_shop_may_not(secure):
    settle = ("settle", "--period", "2026-12", "--force", "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC,
              "--format", "json")
    operator = secure.logins["operator"]
    done = refledger(*settle, "--sasl-mechanism", operator.mechanism, login=operator)
    assert done.returncode == 0, done.stderr
    [settlement] = json.loads(done.stdout)["published"]
    assert settlement["event_id"] == "settlement-2026-12" and len(settlement["published_to"]) == 6
    refused(refledger(*settle, login=secure.logins["shop"]), "refused")

def test_the_operator_changes_the_ledgers_password_with_broker_grant(secure, tmp_path):
    operator, shop, ledger = (secure.logins[r] for r in ("operator", "shop", "ledger"))
    granted = refledger("broker", "grant", "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC, "--group",
                        GROUP, "--sasl-mechanism", operator.mechanism, login=operator,
                        env={"REFLEDGER_SHOP_PASSWORD": shop.password, "REFLEDGER_LEDGER_PASSWORD": "a-new-one"})
    assert granted.returncode == 0, granted.stderr
    consume = ("consume", "--bootstrap-servers", secure.bootstrap, "--db", tmp_path / "l.duckdb", "--topic", TOPIC,
               "--group", GROUP, "--until-idle", "2")
    assert refledger(*consume, login=KafkaLogin("ledger", "a-new-one")).returncode == 0
    refused(refledger(*consume, login=ledger), "'ledger'", "password")
    stranger = refledger("broker", "grant", "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC, login=shop,
                         env={"REFLEDGER_SHOP_PASSWORD": "x", "REFLEDGER_LEDGER_PASSWORD": "y"})
    refused(stranger, "cannot grant", "'shop'", "operator")

def test_a_secured_broker_restarted_without_the_flag_stays_secured(secure):
    where = ["--port", str(secure.port), "--dir", str(secure.directory)]
    assert CliRunner().invoke(cli, ["broker", "stop", *where]).exit_code == 0
    again = CliRunner().invoke(cli, ["broker", "start", *where, "--topic", TOPIC, "--group", GROUP])
    assert again.exit_code == 0, again.output
    assert "SASL/SCRAM" in again.output
    assert secure_broker.logins(secure.directory) == secure.logins, "the same passwords as before"
    published = refledger("produce", BABY_CARE, "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC,
                          "--format", "json", env=as_env(secure.logins["shop"]))
    assert published.returncode == 0, published.stderr
    stranger = refledger("produce", BABY_CARE, "--bootstrap-servers", secure.bootstrap, "--topic", TOPIC)
    refused(stranger, "--sasl-username")
