"""The service's settings: the ``[cloud_credit]`` options an operation needs, copied once."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any

from oslo_config import cfg

from ovh_credit_plugin import conf as plugin_conf
from ovh_credit_plugin import exceptions


@dataclass(frozen=True)
class Settings:
    """Values only: defaults, types and rules live with the options in :mod:`conf`."""

    default_currency: str
    purchased_credit_validity_months: int
    purchase_min_amount: Decimal
    purchase_max_amount: Decimal
    order_lapse_days: int
    payment_url_template: str
    voucher_max_failed_attempts: int
    voucher_attempt_window: int
    clock_skew_allowance: int
    forecast_window_days: int
    forecast_warning_days: tuple[int, ...]

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Settings:
        group = conf.cloud_credit
        values: dict[str, Any] = {}
        for field in fields(cls):
            try:
                value = group[field.name]
            except cfg.Error as error:
                raise exceptions.ConfigError(plugin_conf.error_message(error)) from None
            # Frozen means hashable and unchangeable: lists (ListOpt) become tuples.
            values[field.name] = tuple(value) if isinstance(value, list) else value
        plugin_conf.check_purchase_bounds(
            values["purchase_min_amount"], values["purchase_max_amount"],
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
