"""python-openstackclient extension: the ``--os-cloud-credit-api`` option and the client.

Registered in ``openstack.cli.extension`` as ``cloud_credit``. The commands
themselves are in the ``openstack.rating.v1`` and ``openstack.rating.v2``
namespaces (``openstack rating credit ...``), next to python-cloudkittyclient's.
``client_manager.cloud_credit`` is a :class:`~ovh_credit_plugin.osc.client.CreditClient`
over ``client_manager.rating``'s keystoneauth adapter: one session, one endpoint
lookup, the same TLS and region options as every ``openstack rating`` command.
"""

from __future__ import annotations

import os
from typing import Any

from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.osc.client import API_MODES, DEFAULT_MODE, CreditClient

API_NAME = "cloud_credit"
# OSC reads this (without ``os_``) from clouds.yaml or the command line; the
# API has a single version, and the option exists only because OSC asks for one.
API_VERSION_OPTION = "os_cloud_credit_api_version"
DEFAULT_API_VERSION = "1"
API_VERSIONS = ("1",)
MODE_OPTION = "cloud_credit_api"


def mode_of(instance: Any) -> str:
    """``--os-cloud-credit-api``, else ``cloud_credit_api`` in clouds.yaml, else the default."""
    config = getattr(getattr(instance, "_cli_options", None), "config", None) or {}
    return str(config.get(MODE_OPTION) or DEFAULT_MODE)


def make_client(instance: Any) -> CreditClient:
    return CreditClient(instance.rating.api_client, mode_of(instance))


def build_option_parser(parser: Any) -> Any:
    parser.add_argument(
        "--os-cloud-credit-api",
        metavar="<cloudkitty|standalone>",
        choices=sorted(API_MODES),
        default=os.environ.get("OS_CLOUD_CREDIT_API") or None,
        help=_("Which server answers 'openstack rating credit' commands at the rating "
               "endpoint: 'cloudkitty' (default; CloudKitty's API with the cloud_credit "
               "module, path %(cloudkitty)s) or 'standalone' (ovh-credit-api, path "
               "%(standalone)s). Env: OS_CLOUD_CREDIT_API; clouds.yaml: %(option)s.")
        % {"cloudkitty": API_MODES["cloudkitty"], "standalone": API_MODES["standalone"],
           "option": MODE_OPTION},
    )
    return parser
