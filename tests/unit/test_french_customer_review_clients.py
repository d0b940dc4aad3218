"""A French-speaking customer's clients when the API does not answer, and the panel's
amount field.

``openstack rating credit ...`` writes one line on stderr when no answer came (nothing
listens, the server is silent past the timeout, TLS fails): in the language of the
locale, as every other line it writes, keystoneauth's English replaced by our words
around the address and the system's reason. The command lines translate when a message
is made, in the language the process started with: the French runs are processes of
their own (as in tests/unit/test_french_client_texts.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("keystoneauth1")
pytest.importorskip("django")
pytest.importorskip("horizon")

# The panel's Django settings (shared by the panel's unit tests), before Horizon's modules.
import tests.unit.test_client_and_panel_edges as _edges  # noqa: F401  # isort: skip

from django.utils import translation

from ovh_credit_plugin.dashboard.content.credits import forms as credit_forms
from tests.unit.test_panel_edges_more import _request

NBSP = "\u00a0"

# In a process of its own: the errors of one list request to each address, as printed.
NO_ANSWER = """
import json, sys
from keystoneauth1 import adapter, session
from ovh_credit_plugin.osc import client as credit_client
from ovh_credit_plugin.osc.noauth import CreditNoAuthPlugin

said = []
for endpoint in sys.argv[1:]:
    plugin = CreditNoAuthPlugin(endpoint=endpoint)
    ada = adapter.Adapter(session=session.Session(auth=plugin, timeout=0.5),
                          service_type="rating")
    client = credit_client.CreditClient(ada, "standalone")
    try:
        client.send(client.requests.list_credits())
    except credit_client.CreditAPIError as error:
        said.append(str(error))
print(json.dumps(said))
"""


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


@contextlib.contextmanager
def plain_server() -> Iterator[int]:
    """A port that answers plain HTTP to whatever comes (a TLS client fails there)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nno")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def no_answer_lines(language: str) -> list[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env["LANG"] = language
    with silent_server() as silent, plain_server() as plain:
        endpoints = ["http://127.0.0.1:9", f"http://127.0.0.1:{silent}",
                     f"https://127.0.0.1:{plain}"]
        done = subprocess.run([sys.executable, "-c", NO_ANSWER, *endpoints],
                              capture_output=True, text=True, check=True, env=env,
                              timeout=120)
    said: list[str] = json.loads(done.stdout)
    # The ports are the test's: shown as PORT.
    return [line.replace(f":{silent}/", ":PORT/").replace(f":{plain}/", ":PORT/")
            for line in said]


@pytest.mark.parametrize(("language", "expected"), [
    ("fr_FR.UTF-8", [
        f"Impossible d'établir la connexion avec http://127.0.0.1:9/v1/credits{NBSP}: "
        "[Errno 111] Connection refused",
        "La requête vers http://127.0.0.1:PORT/v1/credits n'a pas reçu de réponse à temps",
        f"Erreur TLS lors de la connexion à https://127.0.0.1:PORT/v1/credits{NBSP}: [SSL",
    ]),
    ("C", [
        "Unable to establish connection to http://127.0.0.1:9/v1/credits: "
        "[Errno 111] Connection refused",
        "Request to http://127.0.0.1:PORT/v1/credits timed out",
        "TLS error connecting to https://127.0.0.1:PORT/v1/credits: [SSL",
    ]),
])
def test_no_answer_is_one_line_in_the_locales_language(language: str,
                                                       expected: list[str]) -> None:
    refused, silent, tls = no_answer_lines(language)
    assert [refused, silent, tls[:len(expected[2])]] == expected
    # The system's reason, not urllib3's object dump.
    assert "HTTPSConnectionPool" not in tls and "object at 0x" not in tls, tls
    assert "\n" not in tls


# -- the panel's amount field ------------------------------------------------------------


def _assert_read_as(language: str, typed: str, currency: str, ordered: str | None) -> None:
    """The add-credit form, in ``language``, orders ``ordered`` for ``typed`` (None: the
    amount is refused)."""
    data: dict[str, Any] = {"amount": typed, "currency": currency, "request_key": "k"}
    with translation.override(language):
        form = credit_forms.AddCreditForm(_request("post", data=data), data=data)
        valid = form.is_valid()
    if ordered is None:
        assert not valid and "amount" in form.errors, form.cleaned_data
    else:
        assert valid, form.errors
        assert form.cleaned_data["amount"] == ordered


@pytest.mark.parametrize(("language", "typed", "ordered"), [
    # Where a point groups (German, Spanish, Italian...: languages Horizon offers),
    # "1.000" is a thousand to its writer and 1.000 in the machine form: either is
    # plausible, as "10,5" is in English. Only a currency with three decimals (KWD)
    # takes 1.000; a point that cannot group is a decimal mark in every language.
    ("de", "1.000", None),
    ("es", "12.500", None),
    ("de", "1.000,000", "1000.000"),
    ("de", "1.5", "1.5"),
    ("en", "1.000", "1.000"),
    ("fr", "1.000", "1.000"),
])
def test_a_point_grouping_thousands_is_never_read_as_a_decimal_mark(
        language: str, typed: str, ordered: str | None) -> None:
    _assert_read_as(language, typed, "KWD", ordered)


def test_an_english_thousands_separator_is_never_read_as_a_decimal_mark() -> None:
    data: dict[str, Any] = {"amount": "1,000", "currency": "KWD", "request_key": "k"}
    with translation.override("en"):
        form = credit_forms.AddCreditForm(_request("post", data=data), data=data)
        valid = form.is_valid()
    assert not valid or form.cleaned_data["amount"] == "1000", form.cleaned_data


@pytest.mark.parametrize(("language", "typed", "ordered"), [
    ("en", "1,000", "1000"),
    ("en", "1,000.50", "1000.50"),
    ("en", "50.00", "50.00"),
    ("en", "10,5", None),  # a French reader's 10.5, a misplaced group to an English one
    ("fr", "10,5", "10.5"),
    ("fr", "1 000,50", "1000.50"),
    ("fr", "1\u00a0000,50", "1000.50"),
    ("fr", "1\u202f000", "1000"),
    ("fr", "50.00", "50.00"),  # the example the field shows, in every language
    ("fr", "1.000,5", None),
    ("en", "1e3", None),
    ("en", "1_000", None),
    ("fr", "\u0661\u0662", None),
    ("en", "-5", None),
    ("de", "1.000,50", "1000.50"),
    ("de", "10,5", "10.5"),
    ("de", "50.00", "50.00"),
])
def test_the_amount_is_read_as_the_users_language_writes_numbers(
        language: str, typed: str, ordered: str | None) -> None:
    _assert_read_as(language, typed, "EUR", ordered)
