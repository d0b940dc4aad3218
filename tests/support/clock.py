"""The tests' clock.

Scenarios run from 2026 over years of simulated time, and the service refuses
a change dated after its clock: services built by the harness (and the CLI,
with ``--now``) take :data:`TEST_NOW` for now. Tests of that refusal use the
wall clock. A module of its own: worker processes import it without pytest.
"""

import datetime as dt

TEST_NOW = dt.datetime(2035, 1, 1, tzinfo=dt.timezone.utc)
