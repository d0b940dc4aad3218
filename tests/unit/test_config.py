"""Options, the generated sample, and the plugin's entry points."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from oslo_config import cfg
from stevedore import driver

from ovh_credit_plugin import conf as plugin_conf
from ovh_credit_plugin import exceptions
from ovh_credit_plugin.service import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "etc/ovh-credit-plugin/ovh-credit-plugin.conf.sample"
GENERATOR_CONFIG = ROOT / "etc/ovh-credit-plugin/ovh-credit-plugin-config-generator.conf"


def test_sample_config_is_what_the_generator_renders(tmp_path: Path) -> None:
    out = tmp_path / "sample.conf"
    generator = Path(sys.executable).with_name("oslo-config-generator")
    # Its namespaces (ours, and oslo.messaging's for the notifications) as tox -e
    # genconfig reads them.
    subprocess.run(
        [str(generator), "--config-file", str(GENERATOR_CONFIG), "--output-file", str(out)],
        check=True,
    )
    assert out.read_text() == SAMPLE.read_text(), (
        "etc/ovh-credit-plugin/ovh-credit-plugin.conf.sample is stale: run tox -e genconfig"
    )


def test_contract_option_names_are_registered() -> None:
    conf = cfg.ConfigOpts()
    plugin_conf.register_opts(conf)
    plugin_conf.register_opts(conf)  # idempotent: hosts may call it twice
    conf(args=[])
    for name in ("connection", "default_currency", "purchased_credit_validity_months",
                 "purchase_min_amount", "purchase_max_amount", "order_lapse_days",
                 "payment_url_template", "voucher_max_failed_attempts",
                 "voucher_attempt_window"):
        assert name in conf.cloud_credit
    for name in ("driver", "endpoint", "auth_token", "timeout", "retries", "verify",
                 "ca_file", "cert_file", "key_file", "file_path"):
        assert name in conf.voucher_catalog
    assert conf.cloud_credit.purchased_credit_validity_months == 13
    assert conf.voucher_catalog.driver == "file"


def test_secrets_are_marked_secret() -> None:
    opts = {o.name: o for _group, group_opts in plugin_conf.list_opts() for o in group_opts}
    assert opts["auth_token"].secret
    assert opts["connection"].secret  # URLs carry passwords


def test_nothing_is_registered_at_import() -> None:
    assert "cloud_credit" not in cfg.CONF


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("purchase_min_amount", "abc", "purchase_min_amount"),
        ("purchase_max_amount", "-1", "purchase_max_amount"),
        ("purchase_min_amount", "200000", "above purchase_max_amount"),
        ("payment_url_template", "https://pay/{nope}", "unknown field"),
        ("payment_url_template", "https://pay/{order_id", "not a valid template"),
        ("payment_url_template", "https://pay/{order_id.__class__}", "unknown field"),
        ("purchase_min_amount", "5.001", "more than 2 decimal places"),
        ("forecast_window_days", "0", "forecast_window_days"),
        ("forecast_warning_days", "30,0", "forecast_warning_days"),
        ("forecast_warning_days", "30,soon", "forecast_warning_days"),
        # Longer than a year made every voucher activation fail (a window reaching
        # back before year 1: "date value out of range").
        ("voucher_attempt_window", "100000000000", "voucher_attempt_window"),
    ],
)
def test_bad_option_values_are_config_errors(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    # Written in a file, as an operator does: oslo.config checks an override's
    # type when it is set, a file's when the option is read.
    path = tmp_path / "bad.conf"
    path.write_text(f"[cloud_credit]\n{option} = {value}\n")
    conf = cfg.ConfigOpts()
    plugin_conf.register_opts(conf)
    conf(args=[], default_config_files=[str(path)])
    with pytest.raises(exceptions.ConfigError, match=message):
        Settings.from_conf(conf)


@pytest.mark.parametrize(("text", "days"), [("30,7", (30, 7)), (" 14 , 3 ", (14, 3)),
                                           ("", ())])
def test_forecast_warning_days(tmp_path: Path, text: str, days: tuple[int, ...]) -> None:
    path = tmp_path / "forecast.conf"
    path.write_text(f"[cloud_credit]\nforecast_warning_days = {text}\n")
    conf = cfg.ConfigOpts()
    plugin_conf.register_opts(conf)
    conf(args=[], default_config_files=[str(path)])
    assert Settings.from_conf(conf).forecast_warning_days == days
    assert Settings.defaults().forecast_warning_days == (30, 7)
    assert Settings.defaults().forecast_window_days == 30


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("5", Decimal(5)),
        ("100000.50", Decimal("100000.50")),
        ("EUR:5", {"EUR": Decimal(5)}),
        ("EUR:5,JPY:500", {"EUR": Decimal(5), "JPY": Decimal(500)}),
        (" EUR : 5.50 , JPY:500 ,KWD:0.125", {"EUR": Decimal("5.50"), "JPY": Decimal(500),
                                               "KWD": Decimal("0.125")}),
        # An override set by code (conf.set_override) is checked like a list.
        ({"EUR": "5", "JPY": 500}, {"EUR": Decimal(5), "JPY": Decimal(500)}),
    ],
)
def test_purchase_amounts_are_one_amount_or_one_per_currency(text: object, read: object) -> None:
    assert plugin_conf.AmountByCurrency("purchase_min_amount")(text) == read


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EUR:5,JPY:500.5", "purchase_min_amount JPY 500.5 has more than 0 decimal places"),
        ("EUR:5.001", "purchase_min_amount EUR 5.001 has more than 2 decimal places"),
        ("KWD:1.0005", "more than 3 decimal places"),
        ("EUR:5,ZZZ:1", "purchase_min_amount: unknown currency 'ZZZ'"),
        ("eur:5", "purchase_min_amount: invalid currency 'eur'"),
        ("XAU:5", "purchase_min_amount: currency 'XAU' has no minor unit"),
        ("EUR:5,EUR:6", "purchase_min_amount: EUR is given twice"),
        ("EUR:5,", "purchase_min_amount: '' is not CURRENCY:AMOUNT"),
        ("EUR:5,JPY", "purchase_min_amount: 'JPY' is not CURRENCY:AMOUNT"),
        ("5,JPY:500", "purchase_min_amount: '5' is not CURRENCY:AMOUNT"),
        ("EUR:0", "purchase_min_amount EUR must be greater than zero"),
        ("JPY:-500", "purchase_min_amount JPY must not be negative"),
        ("EUR:", "purchase_min_amount EUR '' is not a decimal number"),
        ("EUR:1e3", "plain digits"),
        ("five", "purchase_min_amount 'five' is not a decimal number"),
    ],
)
def test_bad_purchase_amounts_are_refused_naming_the_option(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        plugin_conf.AmountByCurrency("purchase_min_amount")(text)


def _settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "limits.conf"
    path.write_text("[cloud_credit]\n" + text)
    conf = cfg.ConfigOpts()
    plugin_conf.register_opts(conf)
    conf(args=[], default_config_files=[str(path)])
    return Settings.from_conf(conf)


def test_purchase_limits_by_currency_are_read_at_load(tmp_path: Path) -> None:
    limit = plugin_conf.PurchaseLimit
    default = _settings(tmp_path, "")
    assert default.purchase_limits == {"EUR": limit(Decimal(5), Decimal(100000))}
    assert hash(default) == hash(Settings.defaults())  # frozen settings stay hashable
    assert _settings(tmp_path, "default_currency = JPY\npurchase_min_amount = 500\n"
                     "purchase_max_amount = 10000000\n").purchase_limits == {
        "JPY": limit(Decimal(500), Decimal(10000000))}
    assert _settings(tmp_path, "purchase_min_amount = EUR:5,JPY:500\n"
                     "purchase_max_amount = JPY:10000000,EUR:100000\n").purchase_limits == {
        "EUR": limit(Decimal(5), Decimal(100000)), "JPY": limit(Decimal(500), Decimal(10000000))}
    # Pairs need not name the default currency: then no credit is sold in it.
    assert _settings(tmp_path, "purchase_min_amount = JPY:500\n"
                     "purchase_max_amount = JPY:10000000\n").purchase_limits == {
        "JPY": limit(Decimal(500), Decimal(10000000))}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("purchase_min_amount = EUR:5,JPY:500\n",
         "[cloud_credit] purchase_min_amount has a limit for JPY, purchase_max_amount has none"),
        ("purchase_max_amount = EUR:100000,USD:100000\n",
         "[cloud_credit] purchase_max_amount has a limit for USD, purchase_min_amount has none"),
        ("purchase_min_amount = EUR:5,JPY:500\npurchase_max_amount = EUR:100000,JPY:100\n",
         "[cloud_credit] purchase_min_amount is above purchase_max_amount for JPY (500 > 100)"),
        ("purchase_min_amount = EUR:5,JPY:500.5\npurchase_max_amount = EUR:9,JPY:900\n",
         "is not valid: purchase_min_amount JPY 500.5 has more than 0 decimal places"),
    ],
)
def test_purchase_limits_across_the_two_options_are_checked_at_load(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(exceptions.ConfigError, match=re.escape(message)):
        _settings(tmp_path, text)


def test_invoice_processor_loads_through_stevedore_without_io() -> None:
    conf = cfg.ConfigOpts()
    manager = driver.DriverManager(
        "ovh_credit_plugin.invoice_processors", "cloud_credit",
        invoke_on_load=True, invoke_kwds={"conf": conf},
    )
    assert type(manager.driver).__name__ == "InvoiceProcessor"
    assert manager.driver._service is None


def test_file_catalog_is_an_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="ovh_credit_plugin.voucher_catalogs")}
    assert "file" in names


def _ini_blocks() -> list[tuple[str, str]]:
    """Every ```ini block of README.md and docs/*.md, with where it is."""
    blocks = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, block in enumerate(re.findall(r"^```ini\n(.*?)^```", path.read_text(),
                                                  flags=re.M | re.S), start=1):
            blocks.append((f"{path.relative_to(ROOT)} block {number}", block))
    return blocks


INI_BLOCKS = _ini_blocks()


def _register_api_libraries(conf: cfg.ConfigOpts, *, auth_plugin: bool) -> None:
    """What ovh-credit-api's libraries register: keystonemiddleware (and the password
    auth plugin its samples use, loaded by keystoneauth at run time) and oslo.policy."""
    from keystoneauth1 import loading
    from keystonemiddleware import auth_token
    from oslo_policy import opts as policy_opts

    for group, opts in [*auth_token.list_opts(), *policy_opts.list_opts()]:
        conf.register_opts(opts, group=group)
    if auth_plugin:  # it has required options
        conf.register_opts(loading.get_auth_plugin_conf_options("password"),
                           group="keystone_authtoken")


def test_the_docs_have_config_samples() -> None:
    assert len(INI_BLOCKS) >= 3


@pytest.mark.parametrize(("where", "text"), INI_BLOCKS, ids=[w for w, _ in INI_BLOCKS])
def test_config_samples_of_the_docs_load(tmp_path: Path, where: str, text: str) -> None:
    """A sample pasted as is must work: oslo.config has no end-of-line comments, so
    ``driver = file  # or http`` is the driver 'file  # or http'."""
    path = tmp_path / "sample.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    plugin_conf.register_opts(conf)
    plugin_conf.register_api_opts(conf)
    _register_api_libraries(conf, auth_plugin="[keystone_authtoken]" in text)
    if "[oslo_messaging" in text:  # the notifications' options, oslo.messaging's own
        from ovh_credit_plugin.service import events

        events._import_oslo_messaging()
        from oslo_messaging import opts as messaging_opts

        for group, opts in messaging_opts.list_opts():
            conf.register_opts(opts, group=group)
    conf(args=[], default_config_files=[str(path)])
    section = None
    for line in text.splitlines():
        if match := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = match[1]
        elif (match := re.fullmatch(r"(\w+)\s*=.*", line)) is not None:
            assert section is not None, line
            name = match[1]
            assert name in conf[section], f"{where}: unknown option [{section}] {name}"
            value = conf[section][name]  # oslo.config checks the type here
            assert not re.search(r"\s[#;]", str(value)), f"{where}: [{section}] {name} = {value!r}"
