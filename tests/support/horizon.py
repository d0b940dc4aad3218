"""The OpenStack dashboard (Horizon) with the plugin's panel, on a loopback port, and a browser.

Horizon (the ``browser-tests`` extra: the ``dashboard`` extra and selenium)
runs in a child process, served by tests/support/serve.py: Django's WSGI
application of ``openstack_dashboard``, with its static files served by
Django's own handler, as ``runserver --insecure`` does. Its local settings are
what an operator writes in ``openstack_dashboard/local/local_settings.py``
(the Keystone of tests/support/keystone.py, the API mode) and the plugin's
enabled files are copied into a directory that Horizon reads as part of
``openstack_dashboard/local/enabled/``, as docs/dashboard.md tells operators
to copy them: nothing is written into the installed Horizon.

Horizon's stylesheets are SCSS compiled on the first page (tens of seconds on
two cores): the compiled files and django-compressor's cache are kept in
``~/.cache/ovh-credit-plugin/horizon-<version>``, so later runs serve them at once;
one Horizon at a time loads its first page (a file lock), so that two pytest workers
do not compile them both.

The browser is Debian's ``chromium`` driven through Debian's ``chromium-driver``
by selenium: nothing is downloaded at test time. Without Horizon, selenium,
chromium or chromedriver the tier is skipped, saying which is missing, unless
``OVH_CREDIT_REQUIRE_BROWSER=1`` (CI), where that is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.support.process import ROOT, ServerProcess, exclusive

REQUIRE_BROWSER = os.environ.get("OVH_CREDIT_REQUIRE_BROWSER") == "1"
CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"
_CONFIG_VARIABLE = "OVH_CREDIT_TEST_HORIZON_CONFIG"
ENABLED = ROOT / "ovh_credit_plugin" / "dashboard" / "enabled"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def chromium_binary() -> str | None:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    return None


def skip_reason() -> str | None:
    """Why the browser tier cannot run here, or None. Raises when it is required."""
    reason = None
    if _version("horizon") is None or _version("selenium") is None:
        reason = ("horizon and selenium are not installed (pip install -c "
                  ".ci/constraints.txt -e '.[browser-tests]')")
    elif chromium_binary() is None or shutil.which(CHROMEDRIVER) is None:
        reason = ("Debian's chromium and chromium-driver are not installed "
                  "(apt-get install chromium chromium-driver)")
    if reason and REQUIRE_BROWSER:
        raise RuntimeError(f"OVH_CREDIT_REQUIRE_BROWSER=1 but {reason}")
    return reason


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ovh-credit-plugin" / f"horizon-{_version('horizon')}"


def cloudkitty_dashboard_enabled_files() -> list[Path]:
    """cloudkitty-dashboard's enabled files, when it is installed (else none)."""
    try:
        import cloudkittydashboard.enabled as enabled
    except ImportError:
        return []
    return sorted(Path(enabled.__path__[0]).glob("_*.py"))


def start_horizon(directory: Path, *, keystone_url: str, api_mode: str,
                  also_enable: list[Path] | None = None) -> ServerProcess:
    """Horizon with the panel enabled, its identity at ``keystone_url`` (``.../v3``).

    ``also_enable``: other plugins' enabled files (cloudkitty-dashboard's), copied too.
    """
    directory.mkdir(parents=True, exist_ok=True)
    enabled = directory / "enabled"
    enabled.mkdir(exist_ok=True)
    # What docs/dashboard.md has operators do: copy the enabled files.
    for source in [*sorted(ENABLED.glob("_*.py")), *(also_enable or [])]:
        shutil.copy2(source, enabled / source.name)
    cache = _cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    config = directory / "horizon.json"
    config.write_text(json.dumps({
        "keystone_url": keystone_url, "api_mode": api_mode, "enabled": str(enabled),
        "static_root": str(cache / "static"), "cache": str(cache / "compress-cache"),
        "local_path": str(directory)}))
    server = ServerProcess.wsgi("tests.support.horizon:application",
                                env={_CONFIG_VARIABLE: str(config)},
                                log_path=directory / "horizon.log", timeout=180)
    # The first page compiles Horizon's stylesheets into the cache (tens of seconds on
    # a new machine): one Horizon at a time, so that another one on the same cache (a
    # second pytest worker's) finds them compiled instead of compiling them too.
    try:
        with exclusive(cache / "first-page.lock"):
            urllib.request.urlopen(f"{server.url}/auth/login/", timeout=600).close()
    except BaseException:
        server.stop()
        raise
    return server


def _local_settings(config: dict[str, Any]) -> types.ModuleType:
    """An operator's local_settings.py, as a module."""
    local = types.ModuleType("local.local_settings")
    local.__dict__.update({
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "SECRET_KEY": "ovh-credit-plugin browser tests",
        "LOCAL_PATH": config["local_path"],
        "OPENSTACK_KEYSTONE_URL": config["keystone_url"],
        "OPENSTACK_ENDPOINT_TYPE": "publicURL",
        "TIME_ZONE": "UTC",
        # The plugin's setting: which server answers at the rating endpoint.
        "CLOUD_CREDIT_API": config["api_mode"],
        "LOGIN_REDIRECT_URL": "/project/cloud_credit/",
        "STATIC_ROOT": config["static_root"],
        "COMPRESS_OFFLINE": False,
        "COMPRESS_CACHE_BACKEND": "compress",
        "CACHES": {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "compress": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                         "LOCATION": config["cache"], "TIMEOUT": None},
        },
        "LOGGING": {"version": 1, "disable_existing_loggers": False,
                    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
                    "root": {"handlers": ["stderr"], "level": "WARNING"}},
    })
    return local


def application() -> Any:
    """In the child: Horizon's WSGI application with the test's local settings."""
    import warnings

    warnings.simplefilter("ignore")
    config = json.loads(Path(os.environ[_CONFIG_VARIABLE]).read_text())
    # Horizon's settings.py runs ``from local.local_settings import *``.
    sys.modules.setdefault("local", types.ModuleType("local"))
    sys.modules["local.local_settings"] = _local_settings(config)
    # ... and reads the enabled files of openstack_dashboard/local/enabled/: ours
    # are in a directory of the test, read as part of that package.
    from openstack_dashboard.local import enabled

    enabled.__path__.append(config["enabled"])
    os.environ["DJANGO_SETTINGS_MODULE"] = "openstack_dashboard.settings"
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application

    return StaticFilesHandler(get_wsgi_application())


def browser(*, language: str = "en") -> Any:
    """Headless chromium through chromedriver (Debian's both), at a fixed window size."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium_binary())
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000", f"--lang={language}",
                     "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    # No password manager: it must not fill a login form with the previous persona.
    options.add_experimental_option("prefs", {"credentials_enable_service": False,
                                              "profile.password_manager_enabled": False,
                                              "autofill.profile_enabled": False})
    service = Service(executable_path=shutil.which(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    # The first page compiles Horizon's stylesheets when the cache is empty.
    driver.set_page_load_timeout(600)
    return driver
