"""How an operator starts and configures ``ovh-credit`` and ``ovh-credit-api``.

- a configuration error, an address that cannot be listened on: one line on
  stderr, non-zero exit, no traceback, for the server as for the CLI;
- the server refuses at start a configuration every request would fail on;
- SIGTERM lets a request in flight finish, then the server exits 0;
- ``ovh-credit --config-file cloudkitty.conf`` is not refused for CloudKitty's own
  ``[api]`` options;
- the CLI's global option errors are one line, as the commands' are.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ovh_credit_plugin.cli.app import main

API = str(Path(sys.executable).with_name("ovh-credit-api"))
NOAUTH = {"X-Project-Id": "p-1", "X-User-Id": "alice", "X-Roles": "member,reader"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def ledger_conf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A migrated SQLite ledger's config file (``[cloud_credit]`` only)."""
    conf = tmp_path / "ledger.conf"
    conf.write_text(f"[cloud_credit]\nconnection = sqlite:///{tmp_path}/ledger.sqlite\n")
    assert main(["--config-file", str(conf), "db", "upgrade"]) == 0
    capsys.readouterr()
    return conf


def _api_conf(tmp_path: Path, port: int, extra: str = "", name: str = "api.conf") -> Path:
    conf = tmp_path / name
    conf.write_text(f"[api]\nauth_strategy = noauth\nbind_port = {port}\n{extra}")
    return conf


def _run_api(*configs: Path | str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``ovh-credit-api --config-file`` each of ``configs`` (an option: given as is)."""
    argv = [API]
    for config in configs:
        argv += [config] if str(config).startswith("--") else ["--config-file", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _start_api(*configs: Path) -> subprocess.Popen[str]:
    argv = [API]
    for config in configs:
        argv += ["--config-file", str(config)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_listening(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while True:  # bounded: until it answers, or 60 s
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
            return
        except requests.ConnectionError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "ovh-credit-api did not start"
            time.sleep(0.1)


def _one_line_failure(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines()
             if line.startswith("ovh-credit-api: ")]
    assert len(lines) == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == lines[0], done.stderr
    return lines[0]


# -- ovh-credit-api: start-up errors --------------------------------------------------


def test_api_with_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    done = _run_api(tmp_path / "missing.conf")
    line = _one_line_failure(done)
    assert str(tmp_path / "missing.conf") in line


def test_api_with_a_bad_option_value_is_one_line_before_listening(
    tmp_path: Path, ledger_conf: Path
) -> None:
    done = _run_api(ledger_conf, _api_conf(tmp_path, 99999))
    line = _one_line_failure(done)
    assert "bind_port" in line and "LocationInfo" not in line


def test_api_with_an_unparsable_config_file_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.conf"
    broken.write_text("connection = nowhere\n")
    line = _one_line_failure(_run_api(broken))
    assert str(broken) in line


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("[cloud_credit]\npool_size = 0\n", "pool_size"),
        ("[cloud_credit]\ndefault_currency = ABC\n", "ABC"),
        ("[cloud_credit]\npurchase_min_amount = EUR:5,USD:5\n", "purchase_max_amount"),
        ("[voucher_catalog]\ntimeout = 0\n", "timeout"),
        ("[cloud-credit]\nconnection = sqlite:///elsewhere.sqlite\n", "[cloud-credit]"),
        ("[api]\nbind_prot = 8890\n", "bind_prot"),
    ],
    ids=["pool_size", "currency", "limits", "catalog timeout", "section typo", "api typo"],
)
def test_api_refuses_at_start_what_every_request_would_fail_on(
    tmp_path: Path, ledger_conf: Path, extra: str, fragment: str
) -> None:
    # Before: "listening on ...", then a 500 for every request.
    port = _free_port()
    done = _run_api(ledger_conf, _api_conf(tmp_path, port, extra), timeout=30)
    line = _one_line_failure(done)
    assert fragment in line


def test_api_refuses_an_empty_connection_and_says_when_it_uses_the_default_ledger(
    tmp_path: Path,
) -> None:
    # As ovh-credit: "connection =" names a ledger, left empty; it was served from
    # ./ovh-credit-ledger.sqlite without a word (then 503s: that file has no tables).
    empty = _api_conf(tmp_path, _free_port(), "[cloud_credit]\nconnection =\n")
    line = _one_line_failure(_run_api(empty, timeout=30))
    assert "[cloud_credit] connection is empty" in line
    port = _free_port()
    process = subprocess.Popen([API, "--config-file", str(_api_conf(tmp_path, port))],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_listening(process, port)
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=60)
    assert (f"no [cloud_credit] connection: the ledger is ovh-credit-ledger.sqlite in the "
            f"working directory, {tmp_path}") in err


def test_api_on_a_port_in_use_is_one_line(tmp_path: Path, ledger_conf: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_api(ledger_conf, _api_conf(tmp_path, port))
    line = _one_line_failure(done)
    assert f"127.0.0.1:{port}" in line and "in use" in line
    assert done.stderr == line + "\n"  # not after the noauth warning


def test_api_listens_on_an_ipv6_bind_host(tmp_path: Path, ledger_conf: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback")
    process = _start_api(ledger_conf, _api_conf(tmp_path, port, "bind_host = ::1\n"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = requests.get(f"http://[::1]:{port}/v1/credits", headers=NOAUTH,
                                        timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "ovh-credit-api did not start"
                time.sleep(0.1)
        assert response.status_code == 200, response.text
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"listening on http://[::1]:{port}/" in err


# -- ovh-credit-api: SIGTERM ------------------------------------------------------------


def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path, ledger_conf: Path) -> None:
    port = _free_port()
    process = _start_api(ledger_conf, _api_conf(tmp_path, port))
    answer = b""
    try:
        _wait_listening(process, port)
        body = b'{"amount": "12.50"}'
        head = (f"POST /v1/orders HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in NOAUTH.items())
                + f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(head)
            time.sleep(0.5)  # the server's thread now reads the body
            process.send_signal(signal.SIGTERM)
            time.sleep(1.5)  # longer than serve_forever's poll interval (0.5 s)
            try:
                client.sendall(body)
                while chunk := client.recv(65536):
                    answer += chunk
            except OSError:
                pass
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    assert answer.startswith(b"HTTP/1.0 201"), (answer, err)
    assert b'"12.50"' in answer
    assert process.returncode == 0, err


def test_a_config_dirs_typo_and_a_file_not_in_utf8_are_one_line_naming_the_file(
    tmp_path: Path, ledger_conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --config-dir's files were read, not checked; a file not in UTF-8 was a traceback
    # (ovh-credit-api), or a codec message naming no file (ovh-credit).
    directory = tmp_path / "conf.d"
    directory.mkdir()
    (directory / "10-ledger.conf").write_text("[cloud_credit]\nconection = sqlite://\n")
    line = _one_line_failure(_run_api(_api_conf(tmp_path, _free_port()),
                                      f"--config-dir={directory}", timeout=30))
    assert "10-ledger.conf: unknown option 'conection' in [cloud_credit]" in line
    latin = tmp_path / "latin.conf"
    latin.write_bytes(b"[cloud_credit]\n# r\xe9sum\xe9\nconnection = sqlite://\n")
    line = _one_line_failure(_run_api(latin, timeout=30))
    assert line == f"ovh-credit-api: {latin} is not UTF-8 text (byte 18)"
    capsys.readouterr()
    assert main(["--config-file", str(latin), "credit", "list", "p-1"]) == 1
    assert capsys.readouterr().err == f"ovh-credit: {latin} is not UTF-8 text (byte 18)\n"


# -- ovh-credit --------------------------------------------------------------------------


def test_cli_reads_cloudkitty_conf_with_cloudkittys_own_api_section(
    tmp_path: Path, ledger_conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/cloudkitty.md: ovh-credit --config-file /etc/cloudkitty/cloudkitty.conf
    ledger = ledger_conf.read_text().split("connection = ", 1)[1].strip()
    cloudkitty = tmp_path / "cloudkitty.conf"
    cloudkitty.write_text(
        "[DEFAULT]\nauth_strategy = keystone\n"
        "[api]\nport = 8889\npecan_debug = false\n"
        f"[database]\nconnection = {ledger}\n"
    )
    capsys.readouterr()
    code = main(["--config-file", str(cloudkitty), "credit", "list", "p-1", "-f", "json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--now", "yesterday", "credit", "list", "p-1"], "argument --now: invalid time"),
        (["credit", "list", "p-1", "--config-file"], None),
        (["--config-file"], "argument --config-file: expected one argument"),
        (["-v", "-q", "credit", "list", "p-1"], "not allowed with argument"),
    ],
    ids=["bad --now", "trailing", "--config-file without a path", "-v and -q"],
)
def test_global_option_usage_errors_are_one_line(
    argv: list[str], fragment: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("ovh-credit: error: ")
    if fragment is not None:
        assert fragment in line


def test_an_unwritable_log_file_is_one_line_naming_it(
    tmp_path: Path, ledger_conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "missing-dir" / "ovh-credit.log"
    capsys.readouterr()
    code = main(["--config-file", str(ledger_conf), "--log-file", str(log),
                 "credit", "list", "p-1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("ovh-credit: ") and str(log) in line


def test_a_client_that_sends_nothing_is_disconnected(monkeypatch: pytest.MonkeyPatch) -> None:
    # It held a server thread for ever (and a shutdown waited for it).
    from ovh_credit_plugin.api import app as api_app

    # A minute by default (standard library: None, never); half a second here.
    assert api_app._QuietHandler.timeout == 60
    monkeypatch.setattr(api_app._QuietHandler, "timeout", 0.5)

    def nothing(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = api_app.make_server(nothing, "127.0.0.1", 0)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        with socket.create_connection(server.server_address[:2], timeout=10) as silent:
            silent.sendall(b"GET / HTTP/1.0\r\n")  # and then nothing more
            assert silent.recv(1024) == b""  # closed by the server, within its timeout
        assert server.wait_for_requests(5) == 0
    finally:
        server.shutdown()
        server.server_close()
