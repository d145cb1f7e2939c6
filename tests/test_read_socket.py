"""The read socket cannot be spoofed: a running consumer answers its own user only, and a reader
believes only a consumer run by its own user.

While `consume` holds a ledger, `balances` and the other reads ask it over a
Unix socket. Another local user who could bind that socket first could feed
`balances` any numbers, and one who could connect could read the ledger. So
the socket lives in the user's private directory (mode 0700, owned by the
user, refused otherwise), and both ends check who is at the other end
(SO_PEERCRED). A second user cannot be conjured up without root, so the
other user is stubbed where the check asks for a uid.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import duckdb
import pytest

from refledger.store import readside
from refledger.store.queries import balances
from refledger.store.readside import ReadError, ReadServer, query, socket_path

FORGED = [{"shop_id": "mallory", "currency": "CNY", "earned_pending": 0, "earned_payable": 99_999_999,
           "owed_pending": 0, "owed_payable": 0, "received": 0, "paid_out": 0}]


@pytest.fixture(autouse=True)
def own_temp_dir(tmp_path, monkeypatch):
    """Sockets go under this test's own temp dir, not the machine's shared one: a short path beside
    it (pytest's own directories can be too long for a Unix socket's path)."""
    base = Path(tempfile.mkdtemp(prefix="rl-"))  # (after tmp_path, which is made under the machine's)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


OTHER_USER = os.getuid() + 4242


def other_user(*_args) -> int:
    return OTHER_USER


def test_the_socket_lives_in_a_directory_only_its_user_can_enter_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        path = Path(socket_path(tmp_path / "ledger.duckdb"))
    finally:
        os.umask(old)
    info = os.lstat(path.parent)
    assert stat.S_ISDIR(info.st_mode)
    assert info.st_uid == os.getuid()
    assert stat.S_IMODE(info.st_mode) == 0o700


def test_the_consumers_socket_itself_is_the_users_alone(tmp_path):
    with ReadServer(tmp_path / "ledger.duckdb", duckdb.connect(), [balances]) as server:
        info = os.stat(server.path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) & 0o077 == 0


def test_a_socket_directory_open_to_others_is_refused_by_consumer_and_reader(tmp_path):
    directory = Path(socket_path(tmp_path / "ledger.duckdb")).parent
    directory.chmod(0o755)
    with pytest.raises(ReadError, match="open to other users"):
        ReadServer(tmp_path / "ledger.duckdb", duckdb.connect(), [balances])
    with pytest.raises(ReadError, match="chmod 700"):
        socket_path(tmp_path / "ledger.duckdb")


def test_a_socket_directory_made_first_by_another_user_is_refused(tmp_path, own_temp_dir, monkeypatch):
    # the directory for the stubbed user's uid exists already, made by "someone else" (the real uid)
    squatted = own_temp_dir / f"refledger-{other_user()}"
    squatted.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", other_user)
    with pytest.raises(ReadError, match="belongs to uid"):
        socket_path(tmp_path / "ledger.duckdb")


def test_a_socket_directory_that_is_a_link_is_refused(tmp_path, own_temp_dir):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (own_temp_dir / f"refledger-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(ReadError, match="not a directory"):
        socket_path(tmp_path / "ledger.duckdb")


def _ask_raw(path: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        try:
            sock.sendall(json.dumps({"query": "balances", "params": {}}).encode() + b"\n")
        except BrokenPipeError:
            pass  # refused before the request was read; the reply is there all the same
        return json.loads(sock.makefile("rb").readline())


def test_the_consumer_answers_its_own_user(tmp_path):
    with ReadServer(tmp_path / "ledger.duckdb", _baby_care_ledger(tmp_path), [balances]) as server:
        reply = _ask_raw(server.path)
    assert reply["ok"] is True
    assert "li-kids" in {row["shop_id"] for row in reply["result"]}


def test_the_consumer_refuses_a_reader_run_by_another_user(tmp_path, monkeypatch):
    monkeypatch.setattr(readside, "peer_uid", other_user)
    with ReadServer(tmp_path / "ledger.duckdb", _baby_care_ledger(tmp_path), [balances]) as server:
        reply = _ask_raw(server.path)
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "refused"
    assert "result" not in reply and "li-kids" not in json.dumps(reply)


def test_a_reader_refuses_the_answers_of_a_process_run_by_another_user(tmp_path, monkeypatch):
    """The ledger is held (as by a running consumer); a forger answers on the socket with numbers of its own."""
    db = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    forger = None
    try:
        assert holder.stdout.readline().strip() == b"held"
        forger = _forger(socket_path(db))
        assert query(db, balances, wait=2) == FORGED, "the premise: the same user's answers are taken"

        monkeypatch.setattr(readside, "peer_uid", other_user)
        with pytest.raises(ReadError, match=f"uid {other_user()}") as refused:
            query(db, balances, wait=2)
        assert "mallory" not in str(refused.value)
    finally:
        if forger is not None:
            forger.shutdown()
            forger.server_close()
        holder.stdin.close()
        holder.wait(timeout=30)


def _forger(path: str) -> socketserver.UnixStreamServer:
    class Forge(socketserver.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            self.wfile.write(json.dumps({"ok": True, "result": FORGED}).encode() + b"\n")

    server = socketserver.UnixStreamServer(path, Forge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _baby_care_ledger(folder: Path):
    """The writer's store of a ledger that holds baby-care (SPEC §13), folded as `ingest` folds it."""
    from refledger.consumers.batch import LogProcessor
    from refledger.consumers.ingest import ingest_files
    from refledger.ledger.fold import PartitionFold
    from refledger.store.ledger_file import LedgerStore
    from tests.scenario_files import SCENARIOS

    store = LedgerStore(folder / "baby-care.duckdb")
    ingest_files([SCENARIOS / "baby-care.jsonl"], LogProcessor(store, PartitionFold, source="ingest"))
    return store


def test_a_temp_dir_too_long_for_a_socket_is_named_with_the_way_out(own_temp_dir, tmp_path):
    """A Unix socket's path holds at most 107 bytes: with TMPDIR deeper than that, the consumer
    and the reader say so and what to do, instead of failing on the socket call."""
    deep = own_temp_dir / ("d" * 100)
    deep.mkdir()
    tempfile.tempdir = str(deep)
    with pytest.raises(ReadError, match="too long for a Unix socket.*TMPDIR"):
        ReadServer(tmp_path / "ledger.duckdb", duckdb.connect(), [balances])
    with pytest.raises(ReadError, match="too long for a Unix socket.*TMPDIR"):
        socket_path(tmp_path / "ledger.duckdb")
