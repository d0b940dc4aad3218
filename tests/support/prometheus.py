"""A real Prometheus (Debian's ``prometheus`` package) serving past samples, for tests.

``promtool tsdb create-blocks-from openmetrics`` writes the samples into a
data directory as blocks (backfilling: no scraping, no waiting for time to
pass), then ``prometheus`` serves that directory on a free loopback port.
Both binaries come from Debian's ``prometheus`` package (2.42 on Debian 12).

The server gets ``PR_SET_PDEATHSIG`` (util-linux ``setpriv``), as the
database servers of :mod:`tests.support.dbservers` do: it dies with the
thread that started it even if ``stop()`` is never reached.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tests.support import dbservers

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
_PORT_ATTEMPTS = 3

#: What CI installs for these tests (Debian 12: prometheus 2.42, with promtool).
DEBIAN_PACKAGE = "prometheus"


@dataclass(frozen=True)
class Series:
    """One time series of a gauge: its labels and (unix seconds, value) samples in time order."""

    labels: Mapping[str, str]
    samples: Sequence[tuple[int, Decimal | int]]


def binaries() -> tuple[str, str] | None:
    """(prometheus, promtool), or None when either is not installed."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if found[0] is None or found[1] is None:
        return None
    return found[0], found[1]


def openmetrics(families: Mapping[str, Iterable[Series]]) -> str:
    """The OpenMetrics text of gauges ``{name: series}``, as promtool reads it."""
    lines: list[str] = []
    for name, series in families.items():
        lines.append(f"# TYPE {name} gauge")
        for one in series:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(one.labels.items()))
            lines.extend(f"{name}{{{labels}}} {value} {at}" for at, value in one.samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def backfill(families: Mapping[str, Iterable[Series]], data_dir: Path) -> None:
    """Write the samples into ``data_dir`` as TSDB blocks (``promtool tsdb
    create-blocks-from openmetrics``)."""
    found = binaries()
    assert found is not None, "prometheus/promtool are not installed"
    source = data_dir.parent / f"{data_dir.name}.om"
    source.write_text(openmetrics(families))
    done = subprocess.run(
        [found[1], "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, f"promtool failed:\n{done.stdout}\n{done.stderr}"


class PrometheusServer:
    """``prometheus`` serving ``data_dir`` on 127.0.0.1; its log in ``log_path``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        """What CloudKitty's ``[collector_prometheus] prometheus_url`` takes."""
        return f"http://{HOST}:{self.port}/api/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(data_dir: Path, base_dir: Path) -> PrometheusServer:
    """Start ``prometheus`` on ``data_dir`` (nothing to scrape) and wait until it is ready."""
    found = binaries()
    assert found is not None, "prometheus/promtool are not installed"
    config = base_dir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")  # no scrape_configs: serves only
    log_path = base_dir / "prometheus.log"
    for attempt in range(_PORT_ATTEMPTS):
        port = dbservers._free_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [*dbservers._die_with_parent("KILL"), found[0],
                 f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
                 f"--web.listen-address={HOST}:{port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        server = PrometheusServer(process, port, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{HOST}:{port}/-/ready", timeout=2).close()
                return server
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        server.stop()
        log_text = log_path.read_text(errors="replace")
        if "address already in use" in log_text and attempt + 1 < _PORT_ATTEMPTS:
            continue
        raise RuntimeError(f"prometheus did not start on port {port}:\n{log_text[-3000:]}")
    raise AssertionError("unreachable")
