"""Reading a ledger while `consume` writes it.

DuckDB lets one process hold a database file for writing, and while it does,
no other process may open the file, not even read-only. So the process that
writes also answers reads: `consume` serves the read queries of
`refledger.store.queries` on a local Unix socket, each on its own DuckDB cursor,
which sees the last committed batch (DuckDB's MVCC snapshot), never a
half-written one. The CLI first tries to open the file read-only; when the
file is locked it asks the socket instead. Same query functions, same
answers, no lock errors.

A read query is a function ``query(cursor, **params)`` returning JSON-able
data. The caller passes the function itself; read directly, it runs on the
file, and through the socket it is named by ``__name__`` and looked up among
the queries the server was given (the command line gives it all of them), so
the server runs nothing else.

The socket is named after the ledger's absolute path and lives in the user's
private directory, `<temp dir>/refledger-<uid>` (mode 0700, made on first
use). Nobody else may stand at either end, or `balances` could be fed
another user's numbers, or another user could read the ledger:

- the directory must be a real directory (not a link), owned by the user
  and closed to everyone else, or both the consumer and the reader refuse
  to use it and say how to fix it (another user who made it first can only
  stop reads through the socket, never answer them);
- the socket itself is made readable and writable by its user only;
- where the system tells who is at the other end of a Unix socket (Linux:
  SO_PEERCRED), the consumer answers only processes of its own user, and a
  reader believes only a consumer of its own user. Elsewhere the private
  directory is the guard.

The protocol is one JSON request line
`{"query": name, "params": {...}}` and one JSON reply line
`{"ok": true, "result": ...}` or `{"ok": false, "error": {"kind": ..., "message": ...}}`:
kind `query` for a `QueryError` (the question cannot be answered: a bad
period, an unknown shop), `unknown_query`, `refused` (the asker runs as
another user), or `failed` for anything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import socketserver
import stat
import struct
import tempfile
import threading
import time
from datetime import date, datetime
from pathlib import Path

import duckdb

from typing import Callable, Iterable

from refledger.store.lake import is_lake, reading
from refledger.store.ledger_file import StoreError
from refledger.store.queries import QueryError

log = logging.getLogger("refledger.readside")

Query = Callable[..., object]


class ReadError(Exception):
    """The ledger cannot be read (missing, locked with nobody answering, failed)."""


class _Unanswered(ReadError):
    """The socket did not answer; the consumer may be starting or stopping."""


def socket_dir() -> Path:
    """The user's private directory for read sockets, made (mode 0700) if missing; `ReadError` when
    it is not a directory of the user's own that nobody else may enter."""
    uid = os.getuid()
    path = Path(tempfile.gettempdir()) / f"refledger-{uid}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ReadError(f"cannot make the directory for read sockets {path}: {exc}") from exc
    info = os.lstat(path)
    elsewhere = "or set TMPDIR to a directory of your own"
    if not stat.S_ISDIR(info.st_mode):
        raise ReadError(f"{path} should be your private directory for read sockets but is not a directory "
                        f"(a link or a file); remove it {elsewhere}")
    if info.st_uid != uid:
        raise ReadError(f"{path}, the directory for your read sockets, belongs to uid {info.st_uid}, not to you "
                        f"(uid {uid}): its owner could answer your reads; have it removed {elsewhere}")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ReadError(f"{path}, the directory for your read sockets, is open to other users "
                        f"(mode {stat.S_IMODE(info.st_mode):04o}); run chmod 700 {path} {elsewhere}")
    return path


# A Unix socket's path holds at most this many bytes on Linux (sun_path: 108, with its final NUL).
SOCKET_PATH_MAX = 107


def socket_path(db: str | Path) -> str:
    digest = hashlib.sha256(str(Path(db).resolve()).encode()).hexdigest()[:16]
    path = str(socket_dir() / f"{digest}.sock")
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX:
        raise ReadError(f"the read socket's path {path} is too long for a Unix socket ({size} bytes, at most "
                        f"{SOCKET_PATH_MAX}): set TMPDIR to a shorter directory of your own")
    return path


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a connected Unix socket, or None where the system
    does not tell (Linux tells, by SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid


def _stranger(sock: socket.socket) -> int | None:
    """The uid at the other end of ``sock`` when it is another user's (None: this user, or unknown)."""
    uid = peer_uid(sock)
    return uid if uid is not None and uid != os.getuid() else None


def _default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _failure(kind: str, message: str) -> dict:
    return {"ok": False, "error": {"kind": kind, "message": message}}


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30  # a client that connects and says nothing does not hold a thread forever

    def handle(self):
        asker = _stranger(self.request)
        if asker is not None:
            log.warning("refused a read from uid %d on %s", asker, self.server.server_address)
            self.wfile.write(json.dumps(_failure("refused", "this consumer answers its own user only")).encode()
                             + b"\n")
            return
        line = self.rfile.readline()
        try:
            request = json.loads(line)
            func = self.server.queries.get(request["query"])
            if func is None:
                reply = _failure("unknown_query", f"this consumer answers no query {request['query']!r}")
            else:
                cur = self.server.connection.cursor()
                try:
                    reply = {"ok": True, "result": func(cur, **request.get("params", {}))}
                finally:
                    cur.close()
        except QueryError as exc:
            reply = _failure("query", str(exc))
        except Exception as exc:  # anything else goes back to the caller, named
            reply = _failure("failed", f"{type(exc).__name__}: {exc}")
        self.wfile.write(json.dumps(reply, default=_default).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    # server_close() waits for the answers in flight, so the writer's connection
    # is never closed under a reader's query
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


class ReadServer:
    """Serves read queries on the writer's connection, in background threads."""

    def __init__(self, db: str | Path, connection, queries: Iterable[Query]):
        """``connection``: what the queries' cursors come from (the writer's store, or a DuckDB
        connection)."""
        self.path = socket_path(db)
        named = {func.__name__: func for func in queries}
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.server = _Server(self.path, _Handler)
        os.chmod(self.path, 0o600)
        self.server.connection = connection
        self.server.queries = named
        self.thread = threading.Thread(target=self.server.serve_forever, name="readside", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _ask_socket(db: str | Path, name: str, params: dict):
    path = socket_path(db)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(120)
            sock.connect(path)
            _check_answerer(sock, path)
            try:
                sock.sendall(json.dumps({"query": name, "params": params}).encode() + b"\n")
            except BrokenPipeError:
                pass  # a consumer that refuses the asker answers before it reads: its reply is still there
            chunks = []
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        raise _Unanswered(f"ledger {db} is locked by another process and no consumer answers on {path}: {exc}")
    if not chunks:
        raise _Unanswered(f"ledger {db} is locked by another process whose socket {path} closed unanswered")
    reply = json.loads(b"".join(chunks))
    if not reply["ok"]:
        error = reply["error"]
        if error["kind"] == "query":
            raise QueryError(error["message"])
        raise ReadError(f"ledger {db}: {error['message']}")
    return reply["result"]


def _check_answerer(sock: socket.socket, path: str) -> None:
    """Only a consumer run by this user may answer this user's reads."""
    answerer = _stranger(sock)
    if answerer is not None:
        raise ReadError(f"the process answering on {path} runs as uid {answerer}, not as you (uid {os.getuid()}): "
                        "it is not your consumer, and its answers are refused")


def _read_directly(db: str | Path, func: Query, params: dict):
    con = duckdb.connect(str(db), read_only=True)
    try:
        result = func(con.cursor(), **params)
        return json.loads(json.dumps(result, default=_default))
    except duckdb.Error as exc:
        raise ReadError(f"cannot read ledger {db}: {exc}") from exc
    finally:
        con.close()


def _read_lake(db, func: Query, params: dict):
    """A ledger on DuckLake needs no socket: any number of readers attach it read-only, each in one
    snapshot of whole batches, and neither waits for the writers nor holds them up."""
    try:
        reader = reading(db)
    except StoreError as exc:
        raise ReadError(str(exc)) from exc
    try:
        return json.loads(json.dumps(func(reader, **params), default=_default))
    except duckdb.Error as exc:
        raise ReadError(f"cannot read ledger {db}: {exc}") from exc
    finally:
        reader.close()


def query(db: str | Path, func: Query, *, wait: float = 30.0, **params):
    """Run the read query ``func(cursor, **params)`` against a ledger file, whether or not a
    consumer holds it. Raises `ReadError`, or `QueryError` when the question itself is wrong.

    A consumer holds the file's lock a moment before its socket answers (start)
    and a moment after it stops answering (shutdown); in those moments the
    query retries, alternating between the file and the socket, for up to
    `wait` seconds before it reports the ledger as unreadable.
    """
    if is_lake(db):
        return _read_lake(db, func, params)
    if not Path(db).exists():
        raise ReadError(f"no ledger at {db}")
    deadline = time.monotonic() + wait
    delay = 0.02
    while True:
        try:
            return _read_directly(db, func, params)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise ReadError(f"cannot open ledger {db}: {exc}") from exc
        try:
            return _ask_socket(db, func.__name__, params)
        except _Unanswered as exc:
            if time.monotonic() >= deadline:
                raise ReadError(str(exc)) from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
