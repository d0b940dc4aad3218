"""The service's settings: the ``[cloud_credit]`` options an operation needs, copied once."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from oslo_config import cfg

from ovh_credit_plugin import conf as plugin_conf
from ovh_credit_plugin import exceptions


@dataclass(frozen=True)
class Settings:
    """Values only: defaults, types and rules live with the options in :mod:`conf`."""

    default_currency: str
    purchased_credit_validity_months: int
    # From purchase_min_amount and purchase_max_amount: a currency absent here is not sold.
    purchase_limits: plugin_conf.PurchaseLimits
    order_lapse_days: int
    payment_url_template: str
    voucher_max_failed_attempts: int
    voucher_attempt_window: int
    clock_skew_allowance: int
    forecast_window_days: int
    forecast_warning_days: tuple[int, ...]
    expiry_warning_send_timeout: int

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Settings:
        group = conf.cloud_credit
        values: dict[str, Any] = {}
        names = [f.name for f in fields(cls) if f.name != "purchase_limits"]
        for name in (*names, "purchase_min_amount", "purchase_max_amount"):
            try:
                value = group[name]
            except cfg.Error as error:
                raise exceptions.ConfigError(plugin_conf.error_message(error)) from None
            # Frozen means hashable and unchangeable: lists (ListOpt) become tuples.
            values[name] = tuple(value) if isinstance(value, list) else value
        values["purchase_limits"] = plugin_conf.purchase_limits(
            values.pop("purchase_min_amount"), values.pop("purchase_max_amount"),
            values["default_currency"],
        )
        return cls(**values)

    @classmethod
    def defaults(cls, **overrides: Any) -> Settings:
        """The options' defaults (a service built without a configuration), ``overrides`` set."""
        conf = cfg.ConfigOpts()
        plugin_conf.register_opts(conf)
        conf(args=[], default_config_files=[])
        return replace(cls.from_conf(conf), **overrides)
