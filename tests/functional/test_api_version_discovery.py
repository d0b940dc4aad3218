"""Version discovery of ``ovh-credit-api``, as OpenStack clients run it, over a real socket.

``GET /`` answers the version document, whose ``self`` link is ``{endpoint}/v1/``;
``GET /v1/`` (and ``/v1``) was a 404. keystoneauth's discovery (the SDKs',
python-openstackclient's) fetches the versioned endpoint and expects
``{"version": {...}}`` there, as keystone answers at ``/v3`` and nova at
``/v2.1``: a client given ``{endpoint}/v1`` failed with "Unable to find a
version discovery document".
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from keystoneauth1 import adapter, discover, session, token_endpoint

from tests.support.api import PROJECT, auth_token_fixture, call, standalone
from tests.support.ledgers import Ledger

MEMBER = {"X-Project-Id": PROJECT, "X-User-Id": "alice", "X-Roles": "member,reader"}
VERSIONED = ("/v1", "/v1/")


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def version_of(url: str) -> dict[str, Any]:
    """The one version the version document at ``/`` lists."""
    (version,) = call("GET", f"{url}/").json()["versions"]
    return dict(version)


# -- keystoneauth's own discovery ------------------------------------------------------


@pytest.mark.parametrize("auth", ["keystone", "noauth"])
def test_keystoneauth_discovers_the_versioned_endpoint_without_a_token(
        ledger: Ledger, auth: str) -> None:
    """A session without any auth plugin: a 401 would make keystoneauth retry with
    a token it does not have (MissingAuthPlugin)."""
    anonymous = session.Session()
    with auth_token_fixture(), standalone(ledger, auth=auth) as url:
        for path in VERSIONED:
            (version,) = discover.get_version_data(anonymous, f"{url}{path}")
            assert version == version_of(url), path
            found = discover.Discover(anonymous, f"{url}{path}")
            assert found.url_for("1.0") == f"{url}/v1/"
            (data,) = found.version_data()
            assert (data["version"], data["url"]) == ((1, 0), f"{url}/v1/")


def test_a_client_given_the_versioned_endpoint_finds_it_and_uses_it(ledger: Ledger) -> None:
    """The SDKs' way: an endpoint from the catalog (here given with a token, as
    ``--os-endpoint``/``--os-token`` do), its version discovered, then a call."""
    with auth_token_fixture() as tokens, standalone(ledger, auth="keystone") as url:
        token = tokens.by_persona["member"]
        for endpoint in (f"{url}/v1", f"{url}/v1/"):
            client = adapter.Adapter(
                session.Session(auth=token_endpoint.Token(endpoint, token)),
                service_type="rating", min_version="1", max_version="1")
            data = client.get_endpoint_data()
            assert data is not None
            assert (data.api_version, data.url) == ((1, 0), f"{url}/v1/"), endpoint
            listed = client.get("credits")
            assert listed.status_code == 200, listed.text
            assert listed.url == f"{url}/v1/credits"


# -- the same over plain HTTP ------------------------------------------------------------


def test_the_versioned_endpoint_answers_its_version_to_anyone(ledger: Ledger) -> None:
    with auth_token_fixture(), standalone(ledger, auth="keystone") as url:
        root = call("GET", f"{url}/")
        for path in VERSIONED:
            answer = call("GET", f"{url}{path}")
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["Content-Type"].startswith("application/json")
            assert answer.headers["Content-Type"] == root.headers["Content-Type"]
            assert answer.json() == {"version": version_of(url)}
            assert answer.json()["version"]["links"] == [
                {"rel": "self", "href": f"{url}/v1/"}]
            assert answer.headers["X-Openstack-Request-Id"].startswith("req-")
            # Like the document at /: the same for every caller, so no no-store.
            assert answer.headers.get("Cache-Control") == root.headers.get("Cache-Control")
            assert "no-store" not in answer.headers.get("Cache-Control", "")
            headed = call("HEAD", f"{url}{path}")
            assert (headed.status_code, headed.content) == (200, b"")
            assert headed.headers["Content-Length"] == answer.headers["Content-Length"]


def test_only_the_versioned_root_is_public(ledger: Ledger) -> None:
    """What is under /v1 still needs a token; so does anything that merely looks alike."""
    with auth_token_fixture(), standalone(ledger, auth="keystone") as url:
        for path in ("/v1/credits", "/v1//", "/v1/credits/", "/v10", "/v1x", "/v1/ovh"):
            answer = call("GET", f"{url}{path}")
            assert answer.status_code == 401, (path, answer.status_code, answer.text)
            assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_the_versioned_document_is_only_read(ledger: Ledger, method: str) -> None:
    with auth_token_fixture(), standalone(ledger, auth="keystone") as url:
        for path in VERSIONED:
            refused = call(method, f"{url}{path}", data=b'{"version": {}}',
                           headers={"Content-Type": "application/json"})
            assert refused.status_code == 405, (path, refused.text)
            (error,) = refused.json()["errors"]
            assert error["code"] == "cloud_credit.method_not_allowed"
            assert error["detail"] == f"{method} is not allowed on {path}"
            assert error["request_id"] == refused.headers["X-Openstack-Request-Id"]
            assert refused.headers["Allow"] == "GET, HEAD"
            assert refused.headers["Cache-Control"] == "no-store"


def test_an_accept_without_json_is_a_406_there_too(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        for path in VERSIONED:
            refused = call("GET", f"{url}{path}", headers={"Accept": "application/xml"})
            assert refused.status_code == 406, (path, refused.text)
            assert refused.json()["errors"][0]["code"] == "cloud_credit.not_acceptable"
            served = call("GET", f"{url}{path}",
                          headers={"Accept": "application/json; charset=utf-8"})
            assert served.status_code == 200


def test_the_resources_still_answer_under_v1(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        listed = requests.get(f"{url}/v1/credits", headers=MEMBER, timeout=60)
        assert listed.status_code == 200, listed.text
        assert listed.json()["credits"] == []
