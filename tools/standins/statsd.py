"""A StatsD listener for tests: a real UDP socket on loopback that records every datagram Airflow sends.

Point Airflow at it with ``env()`` (``[metrics] statsd_on`` and its host, port and prefix) and read back
what arrived: ``counter(name)`` (the sum of its ``|c`` increments), ``gauge(name)`` (its last ``|g``
value), ``timings(name)`` (each ``|ms`` value). Names are read without the prefix, tags as ``key:value``
from Datadog's ``|#tags`` or InfluxDB's ``name,key=value``. Stdlib only; the parsing is the StatsD line
format (``name:value|type[|@rate][|#tags]``, several lines to a datagram).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType

PREFIX = "airflow"


@dataclass(frozen=True)
class Metric:
    name: str  # without the prefix
    value: float
    kind: str  # c, g, ms (h, s as sent)
    tags: tuple[str, ...] = ()


def parse(datagram: str, prefix: str = PREFIX) -> list[Metric]:
    """The metrics of one datagram; a line that is not ``name:value|type...`` raises ValueError."""
    metrics = []
    for line in datagram.splitlines():
        if not line:
            continue
        name, _, rest = line.partition(":")
        value, *fields = rest.split("|")
        if not name or not fields:
            raise ValueError(f"not a StatsD line: {line!r}")
        kind, *extra = fields
        tags = next((tuple(field[1:].split(",")) for field in extra if field.startswith("#")), ())
        name, *influx = name.split(",")  # InfluxDB's form: name,key=value,...
        tags += tuple(tag.replace("=", ":", 1) for tag in influx)
        if prefix and name.startswith(prefix + "."):
            name = name[len(prefix) + 1 :]
        metrics.append(Metric(name, float(value), kind, tags))
    return metrics


class StatsdListener:
    """Bind ``127.0.0.1:<free port>`` and record datagrams in a thread until ``close()``."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self._datagrams: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="statsd-listener", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._datagrams.append(data.decode("utf-8", "replace"))

    def env(self) -> dict[str, str]:
        """Airflow settings that send its metrics here, as plain StatsD."""
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(self.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": self.prefix,
        }

    def metrics(self) -> list[Metric]:
        with self._lock:
            datagrams = list(self._datagrams)
        return [metric for datagram in datagrams for metric in parse(datagram, self.prefix)]

    def mark(self) -> int:
        """How many datagrams arrived so far: pass it as ``since`` to read only what comes after."""
        with self._lock:
            return len(self._datagrams)

    def since(self, mark: int) -> list[Metric]:
        with self._lock:
            datagrams = self._datagrams[mark:]
        return [metric for datagram in datagrams for metric in parse(datagram, self.prefix)]

    def settle(self, quiet_seconds: float = 0.5, timeout: float = 10.0) -> None:
        """Wait until nothing arrived for ``quiet_seconds`` (UDP on loopback lands at once; this only
        covers the sender's last packets still in the socket's queue)."""
        deadline = time.monotonic() + timeout
        seen = self.mark()
        while time.monotonic() < deadline:
            time.sleep(quiet_seconds)
            if (now := self.mark()) == seen:
                return
            seen = now

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> StatsdListener:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def counter(metrics: list[Metric], name: str) -> float:
    """The sum of ``name``'s counter increments (Airflow's client sends them unsampled), over every tag."""
    return sum(m.value for m in metrics if m.name == name and m.kind == "c")


def gauges(metrics: list[Metric], name: str) -> list[tuple[tuple[str, ...], float]]:
    """Every (tags, value) ``name``'s gauge was set to, in order (Airflow sends absolute values)."""
    return [(m.tags, m.value) for m in metrics if m.name == name and m.kind == "g"]


def timings(metrics: list[Metric], name: str) -> list[float]:
    """Every ``|ms`` value sent for ``name``, in order."""
    return [m.value for m in metrics if m.name == name and m.kind == "ms"]
