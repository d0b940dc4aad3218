"""Horizon with the plugin's panel as operators deploy it: Apache httpd and mod_wsgi.

Debian's ``apache2`` runs with a configuration of the test's own (no system
service): Horizon in mod_wsgi **daemon mode** (``WSGIDaemonProcess`` with several
processes and threads, as devstack's ``horizon.conf``), under a URL prefix
(``WSGIScriptAlias /dashboard``, Horizon's ``WEBROOT = '/dashboard/'``), its static
files **collected and compressed offline** (``COMPRESS_OFFLINE = True``; ``manage.py
collectstatic --noinput`` and ``manage.py compress --force``) and served by Apache
(``Alias /dashboard/static``), the daemons running as Apache's user ``www-data``.

mod_wsgi is Debian's ``libapache2-mod-wsgi-py3``, built for Debian's Python (what
Debian's ``openstack-dashboard`` and devstack run): the PyPI ``mod_wsgi`` builds
against the test venv's Python, which lives under ``/root`` (mode 0700) on the
project's machines, where Apache's user cannot read it, and mod_wsgi refuses to run
a daemon process as root. The daemons' ``python-home`` is a virtualenv of Debian's
Python (as devstack's ``python-home``), the test venv's ``site-packages`` on their
``python-path``: the same Horizon, Django and plugin as the rest of the tests.

The collected and compressed static root (``collectstatic``, then Horizon's SCSS and
scripts compressed) takes seconds to build: it is kept in
``~/.cache/ovh-credit-plugin/horizon-<version>/offline-static-<key>``, keyed
on Horizon's and django-compressor's versions, the enabled files and ``WEBROOT``,
built once under a file lock (two pytest workers may ask at once), and linked into
each run's directory, which Apache's user can read (``~`` is root's own).

Without Debian's apache2 and mod_wsgi (or with a Debian Python of another minor
version than the venv's) the tier is skipped, saying which; with
``OVH_CREDIT_REQUIRE_BROWSER=1`` (CI) that is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from tests.support import dbservers, horizon
from tests.support.api_stack import free_port
from tests.support.process import ROOT, exclusive

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
#: Debian's Python of this venv's minor version (the one Debian's mod_wsgi embeds).
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
#: Debian's Apache user, as Debian's openstack-dashboard runs Horizon.
USER = "www-data"
#: The response header that names the daemon process of an answer (the test's
#: WSGI script adds it): the access log shows which process served what.
PID_HEADER = "X-Test-Daemon-Pid"
#: Bumped when the recipe of the static root changes: a new cache entry.
_RECIPE = "1"
_SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])

# What the WSGI script file of a site does: Horizon's own openstack_dashboard/wsgi.py,
# after reading the enabled files the test copied (as an operator copies them into
# openstack_dashboard/local/enabled/, which the test leaves untouched).
_WSGI_SCRIPT = """\
import os
import sys

from openstack_dashboard.local import enabled

enabled.__path__.append({enabled!r})
os.environ['DJANGO_SETTINGS_MODULE'] = 'openstack_dashboard.settings'
sys.stdout = sys.stderr

from django.core.wsgi import get_wsgi_application

_horizon = get_wsgi_application()
_pid = str(os.getpid())


def application(environ, start_response):
    def start(status, headers, exc_info=None):
        return start_response(status, [*headers, ({pid_header!r}, _pid)], exc_info)

    return _horizon(environ, start)
"""

# What an operator runs after enabling a plugin: Horizon's manage.py commands.
_MANAGE = """\
import sys

from openstack_dashboard.local import enabled

enabled.__path__.append(sys.argv[1])
from django.core.management import execute_from_command_line

execute_from_command_line(['manage.py', 'collectstatic', '--noinput', '-v0'])
execute_from_command_line(['manage.py', 'compress', '--force', '-v0'])
"""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _mod_wsgi() -> Path:
    """Debian's mod_wsgi for this Python's minor version."""
    return MODULES / f"mod_wsgi.so-{sys.version_info.major}.{sys.version_info.minor}"


def skip_reason() -> str | None:
    """Why the Apache tier cannot run here, or None. Raises when it is required."""
    reason = None
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    if _version("horizon") is None:
        reason = ("horizon is not installed (pip install -c .ci/constraints.txt "
                  "-e '.[browser-tests]')")
    elif not APACHE.exists() or not (MODULES / "mod_wsgi.so").exists():
        reason = ("Debian's apache2 and libapache2-mod-wsgi-py3 are not installed "
                  "(apt-get install apache2 libapache2-mod-wsgi-py3)")
    elif not _mod_wsgi().exists() or not SYSTEM_PYTHON.exists():
        reason = (f"Debian's mod_wsgi is not built for Python {minor}, this venv's "
                  f"(no {_mod_wsgi()})")
    elif os.geteuid() != 0:
        reason = (f"Apache starts as root to run Horizon's daemon processes as {USER}: "
                  "run the tier as root (as CI does)")
    else:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            reason = f"there is no user {USER} (Apache's) on this machine"
    if reason and horizon.REQUIRE_BROWSER:
        raise RuntimeError(f"OVH_CREDIT_REQUIRE_BROWSER=1 but {reason}")
    return reason


def local_settings(*, keystone_url: str, api_mode: str, webroot: str, static_root: Path,
                   local_path: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An operator's local_settings.py for Horizon under Apache, as a dict.

    tests/support/horizon.py's, with what a production deployment changes: the URL
    prefix, offline compression, Apache serving the static root, sessions that every
    daemon process reads (signed cookies: no memcached to run), and Horizon's sample
    logging (loggers for Horizon's own modules, none for the plugin's).
    """
    settings = horizon._local_settings({
        "keystone_url": keystone_url, "api_mode": api_mode, "static_root": str(static_root),
        "cache": "", "local_path": str(local_path)}).__dict__
    settings = {k: v for k, v in settings.items()
                if not k.startswith("__") and k != "COMPRESS_CACHE_BACKEND"}
    settings.update({
        "WEBROOT": webroot,
        "LOGIN_REDIRECT_URL": f"{webroot}project/cloud_credit/",
        "COMPRESS_OFFLINE": True,
        "SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies",
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        "LOGGING": {
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"console": {"format": "%(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"level": "INFO", "class": "logging.StreamHandler",
                                     "formatter": "console"}},
            "loggers": {name: {"handlers": ["console"], "level": "DEBUG",
                               "propagate": False}
                        for name in ("horizon", "openstack_dashboard", "openstack_auth",
                                     "django")},
        },
        **(extra or {}),
    })
    return settings


def _write_settings_package(directory: Path, settings: dict[str, Any]) -> None:
    """``local/local_settings.py`` under ``directory`` (put on the path), as a file."""
    package = directory / "local"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "local_settings.py").write_text(
        "".join(f"{name} = {value!r}\n" for name, value in sorted(settings.items())))


def _copy_enabled(files: list[Path], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for source in files:
        shutil.copy2(source, directory / source.name)


def _readable(path: Path, *, skip: str | None = None) -> None:
    """Files under ``path`` for Apache's user: directories a+rx, files a+r. Symbolic
    links are left alone, never followed (a venv's ``bin/python`` is the system's)."""
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != skip and not os.path.islink(os.path.join(root, d))]
        os.chmod(root, 0o755)
        for name in files:
            file = os.path.join(root, name)
            if not os.path.islink(file):
                os.chmod(file, 0o644)


def compressed_static_root(enabled: list[Path], *, webroot: str) -> Path:
    """Horizon's static root collected and compressed offline with ``enabled`` files.

    What an operator has after ``collectstatic --noinput`` and ``compress --force``
    with those enabled files and ``WEBROOT``: built once, then kept in the cache.
    """
    key = hashlib.sha256(json.dumps({
        "recipe": _RECIPE, "horizon": _version("horizon"),
        "compressor": _version("django_compressor"), "webroot": webroot,
        "enabled": sorted((f.name, hashlib.sha256(f.read_bytes()).hexdigest())
                          for f in enabled),
    }, sort_keys=True).encode()).hexdigest()[:16]
    cache = horizon._cache_root()
    target = cache / f"offline-static-{key}"
    with exclusive(cache / "offline-static.lock"):
        if (target / "dashboard" / "manifest.json").exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="offline-static-", dir=cache))
        try:
            static = work / "static"
            _write_settings_package(work / "python", local_settings(
                keystone_url="http://127.0.0.1:5000/v3", api_mode="standalone",
                webroot=webroot, static_root=static, local_path=work))
            _copy_enabled(enabled, work / "enabled")
            (work / "manage.py").write_text(_MANAGE)
            result = subprocess.run(
                [sys.executable, str(work / "manage.py"), str(work / "enabled")],
                env={**os.environ, "PYTHONPATH": str(work / "python"),
                     "DJANGO_SETTINGS_MODULE": "openstack_dashboard.settings"},
                cwd=work, capture_output=True, text=True, timeout=1800, check=False)
            if result.returncode != 0 or not (static / "dashboard" / "manifest.json").exists():
                raise RuntimeError(f"collectstatic/compress failed:\n{result.stderr[-4000:]}")
            _readable(static)
            static.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _link_tree(source: Path, target: Path) -> None:
    """A copy of ``source`` made of hard links (a plain copy across file systems)."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


@dataclass
class Site:
    """One Horizon of the Apache: a virtual host on its own port, its daemon processes."""

    name: str
    #: The enabled files Horizon reads (the operator's openstack_dashboard/local/enabled/).
    enabled: list[Path]
    #: Collected and compressed (:func:`compressed_static_root`), maybe with other files.
    static_root: Path
    webroot: str = "/dashboard/"
    processes: int = 3
    threads: int = 10
    #: More local settings (e.g. the plugin's).
    settings: dict[str, Any] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        """Horizon's root: ``http://127.0.0.1:PORT/dashboard`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}{self.webroot.rstrip('/')}"


@dataclass
class Request:
    """A line of a site's access log."""

    method: str
    path: str
    status: int
    pid: int | None
    location: str
    horizon_location: str


class Apache:
    """Apache httpd serving ``sites``; see :func:`start_apache`."""

    def __init__(self, directory: Path, sites: list[Site], process: subprocess.Popen[bytes],
                 log: IO[bytes]):
        self.directory = directory
        self.sites = {site.name: site for site in sites}
        self.process = process
        self._log = log

    def error_log(self, site: str | None = None) -> Path:
        """Apache's error log, or a site's: its virtual host's, where mod_wsgi writes what
        the site's daemon processes write to stderr (Python's logging, warnings)."""
        return self.directory / (f"{site}-error.log" if site else "error.log")

    def errors(self, site: str | None = None) -> str:
        path = self.error_log(site)
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name or 'apache'} error log:\n"
                         + "\n".join(self.errors(name).splitlines()[-lines:])
                         for name in [None, *self.sites])

    def requests(self, site: str) -> list[Request]:
        """What the site's access log has: every request, in order."""
        path = self.directory / f"{site}-access.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(errors="replace").splitlines():
            method, target, status, pid, location, horizon_location = line.split("\t")
            found.append(Request(method, target, int(status),
                                 int(pid) if pid.isdigit() else None,
                                 "" if location == "-" else location,
                                 "" if horizon_location == "-" else horizon_location))
        return found

    def daemons(self) -> set[int]:
        """The pids of the running mod_wsgi daemon processes (children of Apache's own)."""
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if (fields.get("PPid", "").strip() == str(self.process.pid)
                    and fields.get("State", "").split()[0] != "Z"
                    and command.startswith(b"(wsgi:")):
                found.add(int(entry.name))
        return found

    def recycle(self, pid: int, timeout: float = 30) -> None:
        """Ends the daemon process ``pid`` (as ``maximum-requests`` or a restart does):
        mod_wsgi starts another in its place. Only a daemon of this Apache."""
        if pid not in self.daemons():
            raise AssertionError(f"{pid} is not a daemon process of this Apache")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid in self.daemons():
            if time.monotonic() > deadline:
                raise AssertionError(f"daemon {pid} still running after {timeout}s")
            time.sleep(0.05)

    def wait_until_serving(self) -> None:
        """Until each site answers its login page (else stopped, and an error)."""
        try:
            for site in self.sites.values():
                _wait_until_answering(self, f"{site.url}/auth/login/")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _site_config(run: Path, site: Site, pyhome: Path) -> str:
    directory = run / site.name
    prefix = site.webroot.rstrip("/")
    python_path = f"{directory / 'python'}:{_SITE_PACKAGES}"
    return f"""
Listen 127.0.0.1:{site.port}
<VirtualHost 127.0.0.1:{site.port}>
    WSGIDaemonProcess {site.name} user={USER} group={USER} processes={site.processes} \\
        threads={site.threads} home={directory} display-name=(wsgi:{site.name}) \\
        python-home={pyhome} python-path={python_path}
    WSGIProcessGroup {site.name}
    WSGIApplicationGroup %{{GLOBAL}}
    Alias {prefix}/static {directory / 'static'}
    WSGIScriptAlias {prefix or '/'} {directory / 'horizon.wsgi'} \\
        process-group={site.name} application-group=%{{GLOBAL}}
    CustomLog {run / f'{site.name}-access.log'} ovh_credit_test
    ErrorLog {run / f'{site.name}-error.log'}
    <Directory {directory}>
        Require all granted
    </Directory>
</VirtualHost>
"""


def start_apache(sites: list[Site], *, keystone_url: str, api_mode: str,
                 wait: bool = True) -> Apache:
    """Apache + mod_wsgi serving each site on a free loopback port.

    Its directory is a new one under the system's temporary directory (Apache's
    user reads it; pytest's are root's own), removed by :meth:`Apache.stop`.
    ``wait=False``: returns at once (Horizon loads in the daemons meanwhile); call
    :meth:`Apache.wait_until_serving` before using it.
    """
    run = Path(tempfile.mkdtemp(prefix="ovh-credit-apache-"))
    os.chmod(run, 0o755)
    pyhome = run / "python-home"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(pyhome)],
                   check=True, capture_output=True, timeout=120)
    config = [f"""
ServerRoot /etc/apache2
ServerName 127.0.0.1
DefaultRuntimeDir {run}
PidFile {run / 'httpd.pid'}
ErrorLog {run / 'error.log'}
LogLevel warn
User {USER}
Group {USER}
LoadModule mpm_event_module {MODULES / 'mod_mpm_event.so'}
LoadModule authz_core_module {MODULES / 'mod_authz_core.so'}
LoadModule alias_module {MODULES / 'mod_alias.so'}
LoadModule mime_module {MODULES / 'mod_mime.so'}
LoadModule wsgi_module {_mod_wsgi()}
TypesConfig /etc/mime.types
WSGIRestrictEmbedded On
WSGISocketPrefix {run / 'wsgi'}
LogFormat "%m\\t%U%q\\t%>s\\t%{{{PID_HEADER}}}o\\t%{{Location}}o\\t%{{X-Horizon-Location}}o" \\
    ovh_credit_test
"""]
    for site in sites:
        site.port = free_port()
        directory = run / site.name
        _write_settings_package(directory / "python", local_settings(
            keystone_url=keystone_url, api_mode=api_mode, webroot=site.webroot,
            static_root=directory / "static", local_path=directory, extra=site.settings))
        _copy_enabled(site.enabled, directory / "enabled")
        _link_tree(site.static_root, directory / "static")
        (directory / "horizon.wsgi").write_text(_WSGI_SCRIPT.format(
            enabled=str(directory / "enabled"), pid_header=PID_HEADER))
        config.append(_site_config(run, site, pyhome))
    (run / "httpd.conf").write_text("".join(config))
    _readable(run, skip="static")  # the static roots are already (links)
    log = open(run / "apache2.out", "ab")  # noqa: SIM115 - closed in Apache.stop()
    # SIGTERM to Apache when the test process dies (setpriv's PR_SET_PDEATHSIG, then
    # exec): no Apache outlives a killed run.
    setpriv = shutil.which("setpriv")
    process = subprocess.Popen(
        [*([setpriv, "--pdeathsig", "TERM"] if setpriv else []),
         str(APACHE), "-f", str(run / "httpd.conf"), "-DFOREGROUND"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=run,
        # Not the test's environment (PYTHONPATH, the venv): what a service gets.
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    apache = Apache(run, sites, process, log)
    if wait:
        apache.wait_until_serving()
    return apache


def _wait_until_answering(apache: Apache, url: str, timeout: float = 120) -> None:
    """Until ``url`` gets an answer of Horizon's (whatever its status: a test may
    expect an error page)."""
    deadline = time.monotonic() + timeout
    while True:
        if apache.process.poll() is not None:
            out = (apache.directory / "apache2.out").read_text(errors="replace")
            raise RuntimeError(f"apache2 exited with {apache.process.returncode}:\n{out}\n"
                               f"{apache.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=30):
                return
        except urllib.error.HTTPError as error:
            if error.code != 503:  # mod_wsgi's while no daemon process is ready
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not answering after {timeout}s:\n{apache.tail()}")
        time.sleep(0.2)


def unreadable_by_apache() -> str | None:
    """What Apache's user cannot read of what the daemons import (the venv, the plugin's
    source in an editable install, its templates and catalog), or None.

    The directories above the venv and the checkout are first made traversable by
    others (the search bit only, as for PostgreSQL's data directory): a clone under
    ``/root`` (mode 0700) is otherwise out of Apache's user's reach.
    """
    for path in (_SITE_PACKAGES, ROOT):
        dbservers.make_traversable(path)
    script = ("import openstack_dashboard, horizon, ovh_credit_plugin.dashboard as d, os\n"
              "base = os.path.dirname(d.__file__)\n"
              "open(os.path.join(base, 'locale/fr/LC_MESSAGES/django.mo'), 'rb').close()\n"
              "open(os.path.join(base, 'templates/cloud_credit/index.html')).close()\n")
    with tempfile.TemporaryDirectory(prefix="ovh-credit-apache-check-") as directory:
        os.chmod(directory, 0o755)
        pyhome = Path(directory) / "python-home"
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(pyhome)],
                       check=True, capture_output=True, timeout=120)
        result = subprocess.run(
            [str(pyhome / "bin" / "python"), "-c",
             f"import site; site.addsitedir({str(_SITE_PACKAGES)!r})\n{script}"],
            user=USER, group=USER, extra_groups=[], env={"PATH": "/usr/bin:/bin"},
            cwd="/", capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        return (f"Apache's user {USER} cannot read Horizon and the panel in {_SITE_PACKAGES} "
                f"(and the checkout {ROOT}): the directories above them must let it in "
                f"({last})")
    return None
