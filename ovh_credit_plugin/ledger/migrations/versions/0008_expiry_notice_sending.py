"""Expiry warnings recorded but not yet sent: ``sending_since``.

Revision ID: 0008_expiry_notice_sending
Revises: 0007_binary_collation
Create Date: 2026-12-05

``notify-expiring`` records a warning in one transaction and sends it after the
commit. A run killed in between (SIGKILL, an OOM kill, a reboot) left the
warning recorded as sent, and it was never sent. A warning is now recorded with
``sending_since`` (the wall-clock time it was recorded) and the column is cleared
once the transport has taken it; a row still holding it after
``[cloud_credit] expiry_warning_send_timeout`` belongs to a run that died, and the
next run deletes it and sends the warning again if it is still due.

The rows already there were sent (or made needless by a warning sent): the column
is added empty, which says so. Adding a nullable column needs no table copy on
any of the three databases.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ovh_credit_plugin.ledger.types import UTCDateTime

revision = "0008_expiry_notice_sending"
down_revision = "0007_binary_collation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cloud_credit_expiry_notices",
                  sa.Column("sending_since", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # A warning still being sent is forgotten (the next run of the older code sends it
    # again), not kept as sent: the older code would never send it.
    op.execute(sa.text("DELETE FROM cloud_credit_expiry_notices "
                       "WHERE sending_since IS NOT NULL"))
    with op.batch_alter_table("cloud_credit_expiry_notices") as batch_op:
        batch_op.drop_column("sending_since")
