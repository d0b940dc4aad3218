"""What the sdist and the wheel ship, built as a distribution packager builds them.

Everything else runs the package from the source tree (an editable install); an
operator installs a wheel, and a packager rebuilds that wheel from the sdist alone,
with the build requirements it installed itself (``--no-build-isolation``): here, this
environment's setuptools and Babel, through setuptools' PEP 517 backend, on a copy of
the tree as a clean checkout has it (no compiled catalogs, no egg-info, no build/).
"""

from __future__ import annotations

import gettext
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import version
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE = "ovh_credit_plugin"

# What a clean checkout does not have (.gitignore): the tree is copied without them.
NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git", ".venv", ".tox", "__pycache__", "*.py[cod]", "*.egg-info", "build", "dist",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "*.sqlite*",
    ".coverage", "htmlcov", "*.mo", "mutants", "artifacts")

# The first setuptools that reads `license = "SPDX expression"` (PEP 639); older ones
# refuse pyproject.toml ("`project.license` must be valid exactly by one definition").
SETUPTOOLS_SPDX_LICENSE = Version("77")


def _setuptools_requirement() -> Requirement:
    [found] = [Requirement(text) for text in PYPROJECT["build-system"]["requires"]
               if Requirement(text).name == "setuptools"]
    return found


def test_the_build_system_asks_for_a_setuptools_that_reads_this_pyproject() -> None:
    # A packager installs the lowest setuptools [build-system] allows (or has a
    # distribution's older one checked against it): that one must build the project.
    if not isinstance(PYPROJECT["project"].get("license"), str):
        pytest.skip("project.license is not an SPDX expression")
    lowest = [Version(spec.version) for spec in _setuptools_requirement().specifier
              if spec.operator in (">=", "==", "~=")]
    assert lowest and max(lowest) >= SETUPTOOLS_SPDX_LICENSE, (
        f"[build-system] requires {_setuptools_requirement()}, but license = "
        f"{PYPROJECT['project']['license']!r} needs setuptools>={SETUPTOOLS_SPDX_LICENSE}")


def _backend(directory: Path, hook: str, out: Path) -> Path:
    """Runs one PEP 517 hook of setuptools' backend in ``directory``; the file it made."""
    code = ("import sys; from setuptools import build_meta; "
            f"print(build_meta.{hook}(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=directory,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


class Built:
    def __init__(self, tree: Path, sdist: Path, wheel: Path) -> None:
        self.tree = tree
        self.sdist = sdist
        self.wheel = wheel
        with tarfile.open(sdist) as archive:
            # Paths inside the sdist, without its top folder.
            self.sdist_files = {str(PurePosixPath(*PurePosixPath(member.name).parts[1:]))
                                for member in archive.getmembers() if member.isfile()}
        with zipfile.ZipFile(wheel) as archive:
            self.wheel_files = set(archive.namelist())

    def read(self, name: str) -> bytes:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(name)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    needed = _setuptools_requirement()
    have = version("setuptools")
    if not needed.specifier.contains(have):
        reason = (f"this environment's setuptools {have} cannot build the project "
                  f"({needed}): pip install -e '.[test]' installs one that can")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("packaging")
    tree = work / "checkout"
    shutil.copytree(ROOT, tree, ignore=NOT_IN_A_CHECKOUT, symlinks=True)
    (work / "out").mkdir()
    sdist = _backend(tree, "build_sdist", work / "out")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12, 3.11.4 and later
            archive.extractall(work / "unpacked", filter="data")
        else:
            archive.extractall(work / "unpacked")  # our own sdist, just built
    [unpacked] = (work / "unpacked").iterdir()
    # The wheel a packager builds from the sdist alone.
    wheel = _backend(unpacked, "build_wheel", work / "out")
    return Built(tree, sdist, wheel)


def _files_under(root: Path, folder: str) -> set[str]:
    return {path.relative_to(root).as_posix()
            for path in (root / folder).rglob("*") if path.is_file()}


def test_the_wheel_built_from_the_sdist_ships_the_whole_package(built: Built) -> None:
    package = _files_under(built.tree, PACKAGE)
    assert package - built.wheel_files == set()
    for name in ("py.typed", "ledger/migrations/env.py", "ledger/migrations/script.py.mako",
                 "ledger/migrations/versions/0001_initial.py",
                 "dashboard/templates/cloud_credit/index.html",
                 "dashboard/enabled/_32035_cloud_credit_project_panel.py"):
        assert f"{PACKAGE}/{name}" in built.wheel_files


# The samples an operator starts from (etc/ovh-credit-plugin/: the configuration and
# policy samples, the voucher file, the generator's configuration), installed as
# OpenStack projects install theirs (pbr's data_files, keystone's and pycadf's wheels):
# under the installation prefix, in etc/ovh-credit-plugin/.
SAMPLES = "etc/ovh-credit-plugin"


def _wheel_data(built: Built) -> str:
    """The wheel's folder for files installed under the prefix (PEP 427's .data/data/)."""
    [dist_info] = {name.split("/")[0] for name in built.wheel_files
                   if name.split("/")[0].endswith(".dist-info")}
    return dist_info.removesuffix(".dist-info") + ".data/data"


def test_the_wheel_carries_the_samples(built: Built) -> None:
    samples = _files_under(built.tree, SAMPLES)
    assert {f"{SAMPLES}/vouchers.json", f"{SAMPLES}/ovh-credit-plugin.conf.sample",
            f"{SAMPLES}/policy.yaml.sample"} <= samples
    for sample in samples:
        name = f"{_wheel_data(built)}/{sample}"
        assert name in built.wheel_files, sample
        assert built.read(name) == (built.tree / sample).read_bytes(), sample


def _installed_here(cwd: Path) -> str:
    """Where this venv imports the package from, asked outside the source tree."""
    found = subprocess.run(
        [sys.executable, "-c", "import ovh_credit_plugin; print(ovh_credit_plugin.__file__)"],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    return found.stdout.strip() or found.stderr.strip().splitlines()[-1]


def test_installing_the_wheel_puts_the_samples_in_the_prefix_etc(
        built: Built, tmp_path: Path) -> None:
    # As pip installs the wheel for an operator (into a venv, /usr/local or --prefix):
    # the samples land in <prefix>/etc/ovh-credit-plugin/, where docs tell them to look.
    if importlib.util.find_spec("pip") is None:  # a packager's build root may have none
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("pip is not installed: the wheel cannot be installed")
        pytest.skip("pip is not installed: the wheel cannot be installed")
    prefix = tmp_path / "prefix"
    before = _installed_here(tmp_path)
    # --ignore-installed: without it pip, seeing this venv's own (editable) install,
    # uninstalls it first, and every test after this one runs without the package.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-compile", "--disable-pip-version-check", "--ignore-installed",
         "--prefix", str(prefix), str(built.wheel)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _installed_here(tmp_path) == before
    installed = prefix / SAMPLES
    assert _files_under(prefix, SAMPLES) == _files_under(built.tree, SAMPLES)
    catalog = json.loads((installed / "vouchers.json").read_text(encoding="utf-8"))
    assert catalog == json.loads((built.tree / SAMPLES / "vouchers.json").read_text(
        encoding="utf-8"))


def test_the_wheel_carries_the_licence_text(built: Built) -> None:
    # Apache-2.0 asks that recipients get a copy of the licence.
    [licence] = [name for name in built.wheel_files
                 if name.endswith(".dist-info/licenses/LICENSE")]
    assert b"Apache License" in built.read(licence)


def test_the_wheel_built_from_the_sdist_has_every_catalog_compiled(built: Built) -> None:
    catalogs = sorted(name for name in _files_under(built.tree, PACKAGE) if name.endswith(".po"))
    assert f"{PACKAGE}/locale/fr/LC_MESSAGES/{PACKAGE}.po" in catalogs
    assert f"{PACKAGE}/dashboard/locale/fr/LC_MESSAGES/django.po" in catalogs
    for catalog in catalogs:
        assert catalog.removesuffix(".po") + ".mo" in built.wheel_files
    french = gettext.GNUTranslations(io.BytesIO(
        built.read(f"{PACKAGE}/locale/fr/LC_MESSAGES/{PACKAGE}.mo")))
    assert french.gettext("Forbidden") == "Accès refusé"


def test_the_sdist_carries_what_a_rebuild_and_its_tests_read(built: Built) -> None:
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "README.md",
                 "etc/ovh-credit-plugin/ovh-credit-plugin.conf.sample",
                 "etc/ovh-credit-plugin/policy.yaml.sample",
                 "etc/ovh-credit-plugin/vouchers.json", "examples/demo.py",
                 "babel.cfg", "tox.ini", ".ci/constraints.txt", "MANIFEST.in", "LICENSE"):
        assert name in built.sdist_files
    for folder in (PACKAGE, "tests", "docs", "etc", "examples", "tools", "benchmarks"):
        assert _files_under(built.tree, folder) - built.sdist_files == set(), folder
    # Compiled catalogs are the build's, never the sdist's (a stale one would win).
    assert [name for name in built.sdist_files
            if name.endswith((".mo", ".pyc")) or "__pycache__" in name] == []
