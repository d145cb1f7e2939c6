"""A local single-node Apache Kafka broker in KRaft mode, for development and tests.

Real Apache Kafka, run straight from its Maven Central jars:

1. `ensure_jars` resolves `org.apache.kafka:kafka_2.13` and its runtime
   dependencies with `mvn` once into `~/.cache/refledger/kafka-<version>/libs`
   (`$REFLEDGER_KAFKA_CACHE/kafka-<version>/libs` when that is set).
2. `start` writes `server.properties` and `log4j2.properties` into the broker
   directory (default `~/.local/state/refledger/broker-<port>`), formats the
   KRaft storage on first use (`kafka.tools.StorageTool format --standalone`),
   starts `java ... kafka.Kafka server.properties` detached in its own process
   group and waits until the broker answers a metadata request.
   With ``secure``, the broker asks every client to log in (SASL) and
   allows each role only its part (ACLs): `refledger.secure_broker`.
3. `stop` sends SIGTERM to the process group, waits for the clean shutdown
   and sends SIGKILL after a timeout. `status` reads the pid file and asks the
   broker for metadata.

Broker directory::

    server.properties   one node that is broker and KRaft controller
    log4j2.properties   sends the broker's log to server.log
    server.log          the broker's log
    kafka.out           stdout and stderr of the java process (last start)
    broker.pid          pid, which is also the process group id
    data/               log.dirs: the metadata log and the topic partitions

Warm starts take about a second: the first broker that stops cleanly leaves
a class-data-sharing archive next to the jars, which later JVMs map instead
of loading and verifying Kafka's classes again.

Whatever a user can fix (java or mvn missing, port in use, a broker that
exits or does not answer) raises `BrokerError` saying what to do.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from refledger import secure_broker
from refledger.producers.kafka_admin import cluster_answers
from refledger.schemas.kafka_client import KafkaLogin, port_open
from refledger.schemas.messages import DEFAULT_GROUP, DEFAULT_TOPIC

KAFKA_VERSIONS = ("4.3.1", "4.3.0")
LOG4J_VERSION = "2.25.4"
HOST = "127.0.0.1"
DEFAULT_PORT = 9092
STOP_TIMEOUT_S = 30.0

_FAST_START = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData")
BROKER_JVM_OPTS = ("-Xms128m", "-Xmx512m", *_FAST_START, "-Djava.awt.headless=true",
                   "-Dlog4j2.shutdownHookEnabled=false")
TOOL_JVM_OPTS = ("-Xmx256m", *_FAST_START)

PathLike = str | os.PathLike[str]


class BrokerError(Exception):
    """The local broker cannot be fetched, started, reached or stopped."""


@dataclass(frozen=True)
class BrokerInfo:
    """Where a local broker lives and whether it runs.

    Attributes:
        directory: the broker directory (config, logs, data, pid file).
        port: the PLAINTEXT port on 127.0.0.1 that clients connect to.
        controller_port: the KRaft CONTROLLER port, None before the first start.
        pid: process (and process group) id while the process lives, else None.
        state: "running" (alive, answers metadata), "unresponsive" (alive,
            does not answer) or "stopped".
        log_file: the broker's log.
        secure: clients log in (SASL) and each role may do only its part
            (ACLs); the logins are in `logins_dir`.
    """

    directory: Path
    port: int
    controller_port: int | None
    pid: int | None
    state: str
    log_file: Path
    secure: bool = False

    @property
    def logins_dir(self) -> Path | None:
        return self.directory / secure_broker.LOGINS if self.secure else None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers for clients, e.g. `127.0.0.1:9092`."""
        return f"{HOST}:{self.port}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view, the shape of `refledger broker status --format json`."""
        return {
            "state": self.state, "bootstrap": self.bootstrap, "port": self.port,
            "controller_port": self.controller_port, "pid": self.pid,
            "directory": str(self.directory), "log_file": str(self.log_file),
            "secure": self.secure, "logins": str(self.logins_dir) if self.secure else None,
        }


# ---------------------------------------------------------------- public API


def start(
    port: int = DEFAULT_PORT,
    directory: PathLike | None = None,
    wait_s: float = 60.0,
    *,
    exit_with_parent: bool = False,
    secure: bool = False,
    topic: str = DEFAULT_TOPIC,
    group: str = DEFAULT_GROUP,
) -> BrokerInfo:
    """Start a single-node KRaft broker on 127.0.0.1:`port`; return once it answers.

    A broker already running from `directory` on `port` is returned as it is.
    The storage is formatted on the first start only: later starts keep the
    topics and offsets in `directory`. With `exit_with_parent` (Linux) the
    broker gets SIGTERM when the calling thread's process dies, so a killed
    test run leaves no broker behind.

    With `secure` (and always, once a directory was started secured), every
    client logs in and the ACLs of `refledger.secure_broker` apply: `topic`
    is made, shops may write it, the consumer group `group` may read it.
    """
    path = _resolve_dir(directory, port)
    current = status(path, port)
    if current.pid is not None:
        if secure and not current.secure:
            raise BrokerError(f"the broker of {path} runs without logins; stop it first "
                              f"(`refledger broker stop --dir {path}`), then start it with --secure")
        return _already_running(current, port)
    java = _java()
    if not _port_free(port):
        raise BrokerError(
            f"port {port} on {HOST} is already in use; stop the program listening "
            "there or choose another port with --port"
        )
    libs = ensure_jars()
    path.mkdir(parents=True, exist_ok=True)
    secure = secure or secure_broker.is_secured(path)
    if secure:  # the topics' data on disk is no one else's to read either
        path.chmod(0o700)
    logins = secure_broker.keep_logins(path, f"{HOST}:{port}") if secure else {}
    controller = _controller_port(path, port)
    secure_broker.write_private(path / "server.properties",
                                _server_properties(path, port, controller, logins.get(secure_broker.OPERATOR)))
    (path / "log4j2.properties").write_text(_log4j2_properties(path))
    _format_storage(java, libs, path)
    pid = _launch(java, libs, path, exit_with_parent)
    info = BrokerInfo(path, port, controller, pid, "running", path / "server.log", secure)
    _wait_answering(info, wait_s)
    if secure:
        secure_broker.open_for_the_alliance(info.bootstrap, logins, topic, group)
    return info


def stop(
    directory: PathLike | None = None,
    port: int = DEFAULT_PORT,
    timeout_s: float = STOP_TIMEOUT_S,
) -> BrokerInfo:
    """Stop the broker of `directory`: SIGTERM, then SIGKILL after `timeout_s`.

    Stopping a broker that does not run is not an error.
    """
    path = _resolve_dir(directory, port)
    pid = _read_pid(path)
    clean = True
    if pid is not None and _alive(pid):
        clean = _terminate(pid, timeout_s)
    (path / "broker.pid").unlink(missing_ok=True)
    _keep_class_archive(path, clean)
    return status(path, port)


def status(directory: PathLike | None = None, port: int = DEFAULT_PORT) -> BrokerInfo:
    """Describe the broker of `directory` (default: the directory for `port`)."""
    path = _resolve_dir(directory, port)
    configured, controller = _configured_ports(path)
    port = configured or port
    pid = _read_pid(path)
    state = "stopped"
    if pid is not None and _alive(pid):
        state = "running" if cluster_answers(f"{HOST}:{port}", 3.0, _operator(path)) else "unresponsive"
    else:
        pid = None
    return BrokerInfo(path, port, controller, pid, state, path / "server.log", secure_broker.is_secured(path))


def ensure_jars() -> Path:
    """The directory of Kafka broker jars, fetched with mvn on first use.

    Tries Kafka 4.3.1 and falls back to 4.3.0 only when 4.3.1 does not
    resolve. A `.complete` marker is written last, so an interrupted fetch is
    simply done again.
    """
    cached = cached_jars()
    if cached is not None:
        return cached
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "mvn not found on PATH; install Maven 3.8+ (e.g. `apt-get install maven`) so "
            "the Kafka jars can be fetched from Maven Central, or set REFLEDGER_KAFKA_CACHE "
            "to a directory that holds kafka-<version>/libs"
        )
    failures = []
    for version in KAFKA_VERSIONS:
        try:
            return _fetch(mvn, version)
        except BrokerError as exc:
            failures.append(f"kafka {version}: {exc}")
            _progress(f"kafka {version} did not resolve")
    raise BrokerError(
        "could not fetch the Kafka jars with mvn; check that Maven Central is reachable "
        "(network, proxy, ~/.m2/settings.xml) and retry.\n" + "\n".join(failures)
    )


def cached_jars() -> Path | None:
    """The cached jar directory if a complete cache exists, without fetching."""
    for version in KAFKA_VERSIONS:
        libs = _libs_dir(version)
        if (libs / ".complete").is_file():
            return libs
    return None


def cache_root() -> Path:
    """The directory that holds the `kafka-<version>/libs` caches."""
    override = os.environ.get("REFLEDGER_KAFKA_CACHE")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "refledger"


def default_directory(port: int = DEFAULT_PORT) -> Path:
    """The default broker directory for `port`."""
    return Path.home() / ".local" / "state" / "refledger" / f"broker-{port}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- fetching jars


def _libs_dir(version: str) -> Path:
    return cache_root() / f"kafka-{version}" / "libs"


def _progress(message: str) -> None:
    print(f"[refledger broker] {message}", file=sys.stderr, flush=True)


def _fetch(mvn: str, version: str) -> Path:
    libs = _libs_dir(version)
    work = libs.parent
    work.mkdir(parents=True, exist_ok=True)
    staging = work / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    (work / "pom.xml").write_text(_pom(version))
    _progress(f"fetching Apache Kafka {version} jars with mvn into {libs} (once)")
    started = time.monotonic()
    output = _run_mvn([
        mvn, "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ])
    jars = sorted(staging.glob("*.jar")) if staging.is_dir() else []
    if not jars:
        raise BrokerError("mvn copied no jars; its last output:\n" + "\n".join(output[-15:]))
    size_mb = sum(jar.stat().st_size for jar in jars) / 1e6
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    (libs / ".complete").write_text(f"{version}\n")
    _progress(f"fetched {len(jars)} jars ({size_mb:.0f} MB) in {time.monotonic() - started:.0f}s")
    return libs


def _pom(version: str) -> str:
    """kafka_2.13 plus the log4j2 binding for slf4j that its pom leaves out."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>refledger.local</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def _run_mvn(command: list[str]) -> list[str]:
    """Run mvn, reporting each downloaded jar on stderr; return its output lines."""
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        raise BrokerError(f"cannot run mvn: {exc}") from exc
    lines: list[str] = []
    for raw in proc.stdout or ():
        line = raw.rstrip()
        lines.append(line)
        url = line.split(" (")[0]
        if "Downloaded from" in line and url.endswith(".jar"):
            _progress("  downloaded " + url.rsplit("/", 1)[-1])
    if proc.wait() != 0:
        errors = [line for line in lines if "ERROR" in line][:8] or lines[-15:]
        raise BrokerError("mvn failed:\n" + "\n".join(errors))
    return lines


# ---------------------------------------------------------------- broker directory


def _resolve_dir(directory: PathLike | None, port: int) -> Path:
    path = Path(directory).expanduser() if directory is not None else default_directory(port)
    return path.absolute()


def _operator(directory: Path) -> KafkaLogin | None:
    return secure_broker.logins(directory).get(secure_broker.OPERATOR)


def _server_properties(directory: Path, port: int, controller_port: int, operator: KafkaLogin | None) -> str:
    """One node that is broker and controller; with the operator's login, secured (SASL, ACLs)."""
    clients = "SASL_PLAINTEXT" if operator else "PLAINTEXT"
    return f"""# Written by refledger.broker: one node that is both broker and KRaft controller.
process.roles=broker,controller
node.id=1
listeners={clients}://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}
advertised.listeners={clients}://{HOST}:{port}
listener.security.protocol.map={clients}:{clients},CONTROLLER:{clients}
inter.broker.listener.name={clients}
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers={HOST}:{controller_port}
log.dirs={directory / "data"}
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
""" + (secure_broker.security_properties(operator) if operator else "")


def _log4j2_properties(directory: Path) -> str:
    return f"""# Written by refledger.broker: the broker logs to server.log, not the console.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {directory / "server.log"}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _configured_ports(directory: Path) -> tuple[int | None, int | None]:
    """(clients' port, CONTROLLER port) from the directory's server.properties."""
    ports: dict[str, int] = {}
    config = directory / "server.properties"
    lines = config.read_text().splitlines() if config.is_file() else []
    for line in lines:
        if line.startswith("listeners="):
            for listener in line.partition("=")[2].split(","):
                name, _, address = listener.strip().partition("://")
                port = address.rpartition(":")[2]
                if port.isdigit():
                    ports[name] = int(port)
    return ports.get("PLAINTEXT", ports.get("SASL_PLAINTEXT")), ports.get("CONTROLLER")


def _controller_port(directory: Path, port: int) -> int:
    """The controller port used before if it is still free, else a new free one."""
    controller = _configured_ports(directory)[1]
    while controller is None or controller == port or not _port_free(controller):
        controller = free_port()
    return controller


def _read_pid(directory: Path) -> int | None:
    try:
        return int((directory / "broker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _log_tail(directory: Path, lines: int = 20) -> str:
    chunks = []
    for name in ("kafka.out", "server.log"):
        path = directory / name
        if path.is_file():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                chunks.append(f"--- last lines of {path}\n" + "\n".join(text))
    return "\n".join(chunks)


# ---------------------------------------------------------------- processes

_children: dict[int, subprocess.Popen[bytes]] = {}


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "java not found on PATH; install a Java 17+ runtime "
            "(e.g. `apt-get install openjdk-17-jre-headless`) to run the local Kafka broker"
        )
    return java


def _port_free(port: int) -> bool:
    """True when a server could listen on `port` now. Bound as Kafka binds (SO_REUSEADDR), so the
    connections a stopped broker closed, lingering in TIME_WAIT for a minute, do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _already_running(current: BrokerInfo, port: int) -> BrokerInfo:
    where = current.directory
    if current.port != port:
        raise BrokerError(
            f"a broker already runs from {where} on port {current.port}; "
            f"stop it first (`refledger broker stop --dir {where}`)"
        )
    if not current.running:
        raise BrokerError(
            f"the broker process {current.pid} of {where} does not answer; stop it with "
            f"`refledger broker stop --dir {where}`\n{_log_tail(where)}"
        )
    return current


def _alive(pid: int) -> bool:
    """True when `pid` runs and is not a zombie.

    A broker started by this process is asked directly (its command line may
    not show Kafka yet between fork and exec); any other pid must be a live
    Kafka process according to /proc, where /proc exists.
    """
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    proc = Path("/proc") / str(pid)
    if Path("/proc/self").is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X") and b"kafka.Kafka" in (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _classpath(libs: Path) -> str:
    return os.pathsep.join(str(jar) for jar in sorted(libs.glob("*.jar")))


def _jvm_command(java: str, libs: Path, directory: Path, base: tuple[str, ...]) -> list[str]:
    """java, its options and the classpath; $REFLEDGER_KAFKA_JVM_OPTS is appended.

    Class-data sharing: with an archive for these jars and this JVM, map it;
    without one, the broker dumps its classes into its directory on exit and
    `stop` keeps that dump as the archive.
    """
    archive = _class_archive(libs, java)
    if archive.is_file():
        sharing = [f"-XX:SharedArchiveFile={archive}"]
    elif base is BROKER_JVM_OPTS:
        sharing = [f"-XX:ArchiveClassesAtExit={directory / 'classes.jsa'}"]
    else:
        sharing = []
    return [
        java, *base, *sharing,
        f"-Dlog4j2.configurationFile=file:{directory / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={directory}",
        *os.environ.get("REFLEDGER_KAFKA_JVM_OPTS", "").split(),
        "-cp", _classpath(libs),
    ]


def _class_archive(libs: Path, java: str) -> Path:
    """The class-data-sharing archive for these jars and this JVM build."""
    real = Path(os.path.realpath(java))
    return libs.parent / f"classes-{real.parent.parent.name}-{int(real.stat().st_mtime)}.jsa"


def _keep_class_archive(directory: Path, clean_exit: bool) -> None:
    """Move a broker's class dump next to the jars, unless an archive is there already."""
    dump = directory / "classes.jsa"
    libs, java = cached_jars(), shutil.which("java")
    try:
        if clean_exit and libs and java and dump.is_file() and dump.stat().st_size > 0:
            archive = _class_archive(libs, java)
            if not archive.exists():
                os.replace(dump, archive)
    except OSError:
        pass
    dump.unlink(missing_ok=True)


def _format_storage(java: str, libs: Path, directory: Path) -> None:
    if (directory / "data" / "meta.properties").is_file():
        return
    command = [
        *_jvm_command(java, libs, directory, TOOL_JVM_OPTS), "kafka.tools.StorageTool", "format",
        "--config", str(directory / "server.properties"),
        "--cluster-id", _new_cluster_id(), "--standalone",
    ]
    result = subprocess.run(command, cwd=directory, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise BrokerError(
            f"formatting the KRaft storage in {directory / 'data'} failed "
            f"(exit {result.returncode}); remove that directory and retry:\n{result.stdout[-2000:]}"
        )


def _new_cluster_id() -> str:
    """A random cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _launch(java: str, libs: Path, directory: Path, exit_with_parent: bool) -> int:
    command = [*_jvm_command(java, libs, directory, BROKER_JVM_OPTS), "kafka.Kafka",
               str(directory / "server.properties")]
    with open(directory / "kafka.out", "wb") as out:
        child = subprocess.Popen(
            command, cwd=directory, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent if exit_with_parent else None,
        )
    _children[child.pid] = child
    (directory / "broker.pid").write_text(f"{child.pid}\n")
    return child.pid


def _die_with_parent() -> None:
    """Runs in the forked child: ask Linux for SIGTERM when the parent dies."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass


def _wait_answering(info: BrokerInfo, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        if info.pid is None or not _alive(info.pid):
            (info.directory / "broker.pid").unlink(missing_ok=True)
            raise BrokerError(
                f"the broker exited while starting; see {info.log_file}\n{_log_tail(info.directory)}"
            )
        if port_open(info.bootstrap, 0.2) and cluster_answers(info.bootstrap, 5.0, _operator(info.directory)):
            return
        if time.monotonic() >= deadline:
            stop(info.directory, info.port, timeout_s=10.0)
            raise BrokerError(
                f"the broker did not answer on {info.bootstrap} within {wait_s:.0f}s and was "
                f"stopped; see {info.log_file}\n{_log_tail(info.directory)}"
            )
        time.sleep(0.05)


def _terminate(pid: int, timeout_s: float) -> bool:
    """SIGTERM the process group, SIGKILL it after `timeout_s`; True if it exited cleanly."""
    _signal_group(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout_s):
        return True
    _signal_group(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10.0):
        raise BrokerError(f"broker pid {pid} survived SIGKILL; check `ps -p {pid}`")
    return False


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise BrokerError(f"not allowed to signal broker pid {pid}: {exc}") from exc
