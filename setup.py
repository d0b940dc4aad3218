"""Compiles the translation catalogs (``.po`` -> ``.mo``) when the package is built.

Everything else about packaging is in pyproject.toml; setuptools runs this
``build_py`` for wheels and for editable installs alike.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGE = "ovh_credit_plugin"


class build_py_with_catalogs(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages import mofile, pofile

        # An editable install imports the package from the source tree, so the
        # compiled catalogs go there; a wheel gets them in its build directory.
        target_root = Path(PACKAGE) if self.editable_mode else Path(self.build_lib) / PACKAGE
        # The plugin's catalogs (gettext domain ovh_credit_plugin) and the dashboard
        # panel's (Django's domain, django.po, found by Django in the app's locale/).
        sources = [*Path(PACKAGE, "locale").glob("*/LC_MESSAGES/*.po"),
                   *Path(PACKAGE, "dashboard", "locale").glob("*/LC_MESSAGES/*.po")]
        for source in sorted(sources):
            with source.open("rb") as po:
                catalog = pofile.read_po(po)
            target = target_root / source.relative_to(PACKAGE).with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as mo:
                mofile.write_mo(mo, catalog)


setup(cmdclass={"build_py": build_py_with_catalogs})
