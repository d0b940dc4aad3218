"""The test suite.

The tests read messages in English, whatever the machine's locale: a
command-line process picks its language once, when the plugin is imported,
so this is set before any test module (or conftest) imports it. The
translation tests ask for French themselves.
"""

import os

os.environ["LANGUAGE"] = "en"
