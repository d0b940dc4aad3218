"""What ``ovh-credit notify-expiring``'s error line quotes of a failed send: the
transport's error, never a password of its URL (a cluster's URL names each host with
its own ``user:password@``, comma-separated)."""

from __future__ import annotations

import logging

import pytest

from ovh_credit_plugin.service import events


@pytest.mark.parametrize("url", [
    "rabbit://guest:s3cret@10.0.0.1:5672/",
    "rabbit://guest:s3cret@10.0.0.1:5672,guest:s3cret@10.0.0.2:5672/",
    "rabbit://a:s3cret@h1,b:s3cret@h2,c:s3cret@h3/vhost",
])
def test_a_quoted_transport_url_keeps_no_password(url: str) -> None:
    with events._failures() as failure:
        try:
            raise ConnectionError(f"cannot reach {url}: refused")
        except ConnectionError:
            logging.getLogger("oslo_messaging.notify.messaging").exception("send failed")
    assert failure.error.startswith("ConnectionError: cannot reach rabbit://"), failure.error
    assert "s3cret" not in failure.error, failure.error
    assert failure.error.count("***@") == url.count("@")
