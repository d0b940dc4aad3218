"""Option values an operator can write that mean nothing, refused when read."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from ovh_credit_plugin import conf as plugin_conf


def _conf(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "given.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    plugin_conf.register_opts(conf)
    conf(args=[], default_config_files=[str(path)])
    return conf


@pytest.mark.parametrize("option", ["timeout", "connect_timeout", "max_retry_after"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "Infinity"])
def test_catalog_seconds_are_finite(tmp_path: Path, option: str, value: str) -> None:
    # timeout = inf: a traceback of the catalog's deadline thread, then
    # "timestamp out of range for platform time_t" for every voucher call.
    conf = _conf(tmp_path, f"[voucher_catalog]\n{option} = {value}\n")
    with pytest.raises(cfg.ConfigFileValueError, match=f"{option} must be a finite number"):
        conf.voucher_catalog[option]


@pytest.mark.parametrize(("option", "value", "read"), [
    ("timeout", "2.5", 2.5), ("connect_timeout", "0.1", 0.1), ("max_retry_after", "0", 0.0),
])
def test_catalog_seconds_still_read(tmp_path: Path, option: str, value: str,
                                    read: float) -> None:
    conf = _conf(tmp_path, f"[voucher_catalog]\n{option} = {value}\n")
    assert conf.voucher_catalog[option] == read


def test_catalog_seconds_keep_their_minimum(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "[voucher_catalog]\ntimeout = 0\n")
    with pytest.raises(cfg.ConfigFileValueError, match=r"greater than or equal to 0\.1"):
        conf.voucher_catalog.timeout  # noqa: B018


@pytest.mark.parametrize(("template", "fragment"), [
    ("", "http(s) URL"),
    ("order {order_id}", "http(s) URL"),
    ("ftp://pay.example/{order_id}", "http(s) URL"),
    ("https:///{order_id}", "http(s) URL"),
    ("https://pay.example/checkout?project={project_id}", "{order_id}"),
])
def test_a_payment_url_template_must_be_a_url_naming_the_order(
    tmp_path: Path, template: str, fragment: str
) -> None:
    # Before: "payment_url": "" (or "order 1234") in every order a customer gets.
    conf = _conf(tmp_path, f"[cloud_credit]\npayment_url_template = {template}\n")
    with pytest.raises(cfg.ConfigFileValueError) as raised:
        conf.cloud_credit.payment_url_template  # noqa: B018
    assert "payment_url_template" in str(raised.value)
    assert fragment in str(raised.value)


@pytest.mark.parametrize("template", [
    "https://www.ovh.com/cgi-bin/order/displayOrder.cgi?orderId={order_id}",
    "http://pay.example/{project_id}/{order_id}?amount={amount}&currency={currency}",
    "https://pay.example:8443/orders/{order_id}",
])
def test_good_payment_url_templates_still_read(tmp_path: Path, template: str) -> None:
    conf = _conf(tmp_path, f"[cloud_credit]\npayment_url_template = {template}\n")
    assert conf.cloud_credit.payment_url_template == template


def test_the_api_section_of_a_host_file_is_the_hosts(tmp_path: Path) -> None:
    # CloudKitty's own [api] port, in the cloudkitty.conf ovh-credit reads.
    path = tmp_path / "cloudkitty.conf"
    path.write_text("[api]\nport = 8889\n")
    plugin_conf.check_config_files([str(path)])
    with pytest.raises(Exception, match="unknown option 'port' in \\[api\\]"):
        plugin_conf.check_config_files([str(path)], api=True)


@pytest.mark.parametrize("text", [
    "[cloud_credit]\npool_size = 0\n",
    "[cloud-credit]\nconnection = sqlite:///elsewhere.sqlite\n",
    "[voucher_catalog]\ndriver = fle\n",
])
def test_load_app_refuses_what_every_request_would_fail_on(tmp_path: Path, text: str) -> None:
    # docs/api.md: application = load_app([...]) under uWSGI, gunicorn, mod_wsgi.
    # Before: an application whose every request is a 500.
    from ovh_credit_plugin import exceptions
    from ovh_credit_plugin.api.app import load_app

    path = tmp_path / "api.conf"
    path.write_text("[api]\nauth_strategy = noauth\n" + text)
    with pytest.raises((cfg.Error, exceptions.ConfigError)):
        load_app(["--config-file", str(path)])
