"""A local PostgreSQL for a DuckLake ledger's catalog (`refledger catalog start|stop|status`).

A ledger on DuckLake keeps its catalog (tables, files, snapshots, claims) in
PostgreSQL and its rows in Parquet files under a data path. For one machine,
or to try it out, this runs Debian's PostgreSQL binaries (package
`postgresql`; `apt-get install -y postgresql` as root) on 127.0.0.1, the
way `refledger broker` runs Kafka:

    DIR/catalog.json   the port and where the cluster lives
    DIR/lake/          the data path: the ledger's Parquet files
    cluster            DIR/postgres, or, when run as root, a directory of the
                       PostgreSQL service user (PostgreSQL refuses to run as
                       root): /var/lib/refledger/catalogs/<digest of DIR>

The cluster trusts connections from 127.0.0.1 without a password (a local
development catalog: put a production catalog behind PostgreSQL's own
authentication), has one role and one database, both `refledger`, and
listens on no Unix socket. When run as root, the cluster's processes run as
the `postgres` user the Debian package creates (or, without it, a system
user `refledger-catalog` created on first use).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT = 55432
DATABASE = "refledger"
ROLE = "refledger"
SERVICE_USERS = ("postgres", "refledger-catalog")
ROOT_CLUSTERS = Path("/var/lib/refledger/catalogs")
INSTALL_HINT = "install Debian's PostgreSQL: apt-get update && apt-get install -y postgresql (as root)"


class CatalogError(Exception):
    """The local catalog cannot be set up, started, reached or stopped."""


@dataclass(frozen=True)
class CatalogInfo:
    """Where a local catalog lives and whether it runs (state: running, stopped)."""

    directory: Path
    port: int
    cluster: Path
    state: str
    pid: int | None

    @property
    def db(self) -> str:
        """The ``--db`` of a ledger on this catalog."""
        return connection_db(self.port, DATABASE)

    @property
    def data_path(self) -> Path:
        """The ``--data-path`` of a ledger on this catalog."""
        return self.directory / "lake"

    @property
    def log_file(self) -> Path:
        return self.cluster / "catalog.log"

    def ledger(self) -> dict[str, str]:
        """Exactly the ``--db`` and ``--data-path`` to give (`catalog status --format json`)."""
        return {"db": self.db, "data_path": str(self.data_path)}

    def as_rows(self) -> list[dict[str, object]]:
        shown = {"state": self.state, "db": self.db, "data_path": str(self.data_path), "port": self.port,
                 "pid": self.pid, "directory": str(self.directory), "cluster": str(self.cluster),
                 "log_file": str(self.log_file)}
        return [{"field": k, "value": v} for k, v in shown.items()]


def connection_db(port: int, database: str) -> str:
    return f"ducklake:postgres:host={HOST} port={port} dbname={database} user={ROLE}"


# ---------------------------------------------------------------- public API


def start(directory: str | os.PathLike, port: int | None = None, wait_s: float = 60.0) -> CatalogInfo:
    """Start the catalog of ``directory`` (set it up on first use); return once it accepts connections.
    A catalog that already runs is returned as it is."""
    directory = Path(directory).resolve()
    settings = _settings(directory, port)
    current = status(directory)
    if current.state == "running":
        return current
    bins = binaries()
    user = _service_user()
    cluster = Path(settings["cluster"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lake").mkdir(exist_ok=True)
    if not (cluster / "PG_VERSION").exists():
        _init_cluster(bins, cluster, user)
    if not _port_free(settings["port"]):
        raise CatalogError(f"port {settings['port']} on {HOST} is in use; choose another with --port")
    (directory / "catalog.json").write_text(json.dumps(settings, indent=1) + "\n")
    options = f"-p {settings['port']} -c listen_addresses={HOST} -c unix_socket_directories=''"
    done = _run(user, [str(bins / "pg_ctl"), "-D", str(cluster), "-l", str(cluster / "catalog.log"), "-w",
                       "-t", str(int(wait_s)), "-o", options, "start"])
    if done.returncode != 0:
        raise CatalogError(f"PostgreSQL did not start: {done.stdout.strip()} {done.stderr.strip()}\n"
                           f"{_log_tail(cluster)}")
    create_database(settings["port"], DATABASE)
    return status(directory)


def stop(directory: str | os.PathLike) -> CatalogInfo:
    """Stop the catalog of ``directory`` (a fast shutdown: open sessions are ended, then it exits).
    Stopping a catalog that does not run is not an error."""
    directory = Path(directory).resolve()
    current = status(directory)
    if current.state == "running":
        bins = binaries()
        done = _run(_service_user(), [str(bins / "pg_ctl"), "-D", str(current.cluster), "-m", "fast", "-w",
                                      "stop"])
        if done.returncode != 0 and _pid(current.cluster) is not None:
            raise CatalogError(f"PostgreSQL did not stop: {done.stdout.strip()} {done.stderr.strip()}")
    return status(directory)


def status(directory: str | os.PathLike) -> CatalogInfo:
    """Describe the catalog of ``directory``."""
    directory = Path(directory).resolve()
    settings = _settings(directory, None)
    cluster = Path(settings["cluster"])
    pid = _pid(cluster)
    state = "running" if pid is not None and _answers(settings["port"]) else "stopped"
    return CatalogInfo(directory, settings["port"], cluster, state, pid if state == "running" else None)


def create_database(port: int, name: str) -> None:
    """A database for one more ledger on the running catalog (nothing when it exists)."""
    bins = binaries()
    done = subprocess.run([str(bins / "createdb"), "-h", HOST, "-p", str(port), "-U", ROLE, name],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise CatalogError(f"cannot create database {name}: {done.stderr.strip()}")


def binaries() -> Path:
    """The directory of PostgreSQL's server programs (initdb, pg_ctl, createdb)."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name),
                         reverse=True)
    for bins in candidates:
        if all((bins / name).exists() for name in ("initdb", "pg_ctl", "createdb")):
            return bins
    raise CatalogError(f"PostgreSQL's programs (initdb, pg_ctl) are not installed; {INSTALL_HINT}")


# ---------------------------------------------------------------- the cluster


def _version(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _settings(directory: Path, port: int | None) -> dict:
    path = directory / "catalog.json"
    settings = json.loads(path.read_text()) if path.exists() else {}
    settings["port"] = port or settings.get("port") or DEFAULT_PORT
    settings.setdefault("cluster", str(_cluster_dir(directory)))
    return settings


def _cluster_dir(directory: Path) -> Path:
    if os.geteuid() != 0:
        return directory / "postgres"
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return ROOT_CLUSTERS / digest


def _service_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: this user, or, for root, the service user (created when missing)."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                           SERVICE_USERS[-1]], capture_output=True, text=True)
    if done.returncode != 0:
        raise CatalogError(f"cannot create the user {SERVICE_USERS[-1]} to run PostgreSQL as: {done.stderr.strip()}")
    return pwd.getpwnam(SERVICE_USERS[-1])


def _init_cluster(bins: Path, cluster: Path, user) -> None:
    cluster.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(cluster, user.pw_uid, user.pw_gid)
    cluster.chmod(0o700)
    done = _run(user, [str(bins / "initdb"), "-D", str(cluster), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                       "--no-locale"])
    if done.returncode != 0:
        raise CatalogError(f"initdb failed: {done.stdout.strip()} {done.stderr.strip()}")


def _run(user, command: list[str]) -> subprocess.CompletedProcess:
    """Run a PostgreSQL program, as the service user when this is root."""
    if user is None:
        return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/", "LANG": "C.UTF-8"}
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, user=user.pw_uid,
                          group=user.pw_gid, extra_groups=[], env=env, cwd="/")


def _pid(cluster: Path) -> int | None:
    try:
        pid = int((cluster / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _answers(port: int, timeout_s: float = 2.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            return True
        except OSError:
            return False


def _log_tail(cluster: Path, lines: int = 15) -> str:
    try:
        return "\n".join((cluster / "catalog.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

