"""Voucher codes: check one, activate one (intent, redemption, grant), list pending ones.

Lock order (PostgreSQL, MariaDB; SQLite writers run one at a time). A
transaction that locks an activation's row and its project's row locks the
activation's first (``activations.find(..., lock=True)``, SELECT ... FOR
UPDATE), then the project's (``projects.currency(..., lock=True)`` or
``projects.ensure``, SELECT ... FOR UPDATE; a credit's INSERT, through its
foreign key): a resume's claim, a grant, and the move of a project to the
voucher's currency (``Vouchers._hold_currency``, off the common path: it
used to lock the project first, and deadlocked with a resume of the same
code, the ledger retrying one of them). What such a transaction then does
to the activation (``rewrite_intent``, ``mark_sent``, ``mark_granted``)
touches the row it holds. An intent's INSERT (``record_first_intent``,
``record_intent``) comes after the project's lock: its row is new, and the
tries that could write it queue on the project's lock. Dropping an intent
(``_abandon``, ``_refuse``) or marking it sent after a failed POST
(``_keep_sent``) takes the activation's row alone, and
``release_currency`` the project's, each in a transaction of its own
(``ledger.projects.forget_if_empty`` reads the activations without locking
them); ``_keep_sent`` takes the project's, then INSERTs, only when the
intent is gone. Every statement that locks an activation's row locks it
through ``find(..., lock=True)`` first, then writes it by key: MariaDB locks
the index entries a statement reads, and a DELETE or UPDATE by key waiting
for a row a claim held kept the key's entry the claim then needed (a
deadlock, one of them retried). tests/service/test_voucher_lock_order.py
and tests/service/test_voucher_sent_mark_review.py drive each pair.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy.engine import Connection

from ovh_credit_plugin import descriptions, exceptions, models
from ovh_credit_plugin.catalog import base as catalog_base
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import activations, credits, projects
from ovh_credit_plugin.ledger.database import Database, describe_failure
from ovh_credit_plugin.service import events, inputs
from ovh_credit_plugin.service.voucher_throttle import Throttle, Unblock, new_attempt

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoucherPreview:
    """What activating a voucher would grant (``voucher check``)."""

    voucher: models.Voucher
    redeemable: bool
    reason: str


class Vouchers:
    """Activation of voucher codes against a catalog, granted once per (project, code)."""

    def __init__(
        self,
        database: Database,
        *,
        catalog: Callable[[], catalog_base.VoucherCatalog],
        throttle: Throttle,
        times: inputs.Times,
        notifier: events.Notifier,
        default_currency: Callable[[], str],
    ) -> None:
        self.database = database
        self.default_currency = default_currency
        self.times = times
        self.notifier = notifier
        self._catalog = catalog
        self.throttle = throttle

    @property
    def catalog(self) -> catalog_base.VoucherCatalog:
        return self._catalog()

    def check(
        self, code: str, *, project_id: str | None = None, at: dt.datetime | None = None
    ) -> VoucherPreview:
        """What a code would grant, without redeeming it (the catalog's GET only).

        For a project (``project_id``: the REST API's caller, ``voucher check
        --project``), a check is a try like an activation: a throttled project
        cannot probe codes (TooManyAttempts, asking nothing of the catalog),
        and a check of an unknown, used or expired code counts as a failed
        try. A code the project activated itself tries nothing new: neither
        throttled nor counted. Without a project it is an operator's check:
        not throttled, and it tells an unknown code from a used one.
        """
        normalized = catalog_base.normalize_code(code)
        if project_id is None:
            return self._preview(normalized, self.times.read(at))
        at = self.times.change(at)  # it records the try
        project_id = inputs.project_id(project_id)
        masked = catalog_base.mask_code(normalized)
        found, attempt = self.throttle.reserve(
            project_id, at,
            first=lambda conn: activations.status(conn, project_id, normalized),
            skip=lambda found: found is not None,
        )
        if attempt is None:
            preview = self._preview(normalized, at)
            if found == "granted" and preview.redeemable:
                # Redeemable for others: activating it again here grants
                # nothing new (its credit comes back).
                return VoucherPreview(preview.voucher, False, _(
                    "project %(project)s has already activated this voucher")
                    % {"project": project_id})
            return preview
        try:
            preview = self._preview(normalized, at)
        except catalog_base.REFUSALS as error:  # an unknown code
            self._failed_check(project_id, masked, error, attempt=attempt, at=at)
            raise
        except Exception:
            self.throttle.drop(attempt)  # not the customer's doing
            raise
        if preview.redeemable:
            # Not a failure, and nothing worth keeping: a preview leaves no trace.
            self.throttle.drop(attempt)
            return self._in_the_projects_currency(project_id, preview)
        self._failed_check(project_id, masked, preview.reason, attempt=attempt, at=at)
        return preview

    def _in_the_projects_currency(self, project_id: str, preview: VoucherPreview
                                  ) -> VoucherPreview:
        """``preview``, or not redeemable when the project bills in another currency that
        something holds (its activation would be refused: not a failed try either)."""
        wanted = preview.voucher.currency

        def bills_in(conn: Connection) -> str | None:
            found = projects.currency(conn, project_id)
            if found in (None, wanted) or project_id not in projects.held(conn, {project_id}):
                return None  # fixed now, or moved to the voucher's by its activation
            return found

        found = self.database.read(bills_in)
        if found is None:
            return preview
        return VoucherPreview(preview.voucher, False, _(
            "this voucher is in %(currency)s but project %(project)s bills in %(found)s")
            % {"currency": wanted, "project": project_id, "found": found})

    def _preview(self, code: str, at: dt.datetime) -> VoucherPreview:
        voucher = self.catalog.get(code)
        try:
            catalog_base.check_usable(voucher, code, at)
        except (catalog_base.VoucherAlreadyRedeemed, catalog_base.VoucherUnavailable) as error:
            # Only the voucher's own state makes a preview "not redeemable";
            # a broken answer (another code...) is an error, raised as such.
            return VoucherPreview(voucher, False, str(error))
        return VoucherPreview(voucher, True, "redeemable")

    def _failed_check(self, project_id: str, masked: str, error: BaseException | str, *,
                      attempt: str, at: dt.datetime) -> None:
        LOG.warning("voucher %s: check by project %s failed: %s", masked, project_id, error)
        self.database.write(lambda conn: Throttle.failed(
            conn, project_id, attempt, reason=f"{masked}: checked: {error}", at=at))

    def activate(
        self, project_id: str, code: str, *, at: dt.datetime | None = None
    ) -> tuple[models.Credit, bool]:
        """Validate and redeem a code against the catalog, then grant its credit once.

        Returns (credit, created). A code the project already activated
        returns that credit (``created`` False): it tries no new code, so it
        is neither throttled nor counted as a failed attempt (it used to be,
        and a client retrying after a lost answer locked its project out).

        Crash-safe: the intent is recorded (``pending``) before the catalog
        is asked to redeem, under an idempotency key fixed per (project,
        code). If the process dies, or the catalog's answer is lost, between
        the catalog's redemption and the grant, running the same activation
        again (``ovh-credit voucher pending`` lists them) replays the
        redemption with the same key, gets the same redemption back and
        grants exactly once.

        Abuse: failed activations are counted per project, in-flight ones
        included, so concurrent tries cannot overrun the limit; unknown,
        used and expired codes all give the customer the same message, and
        the logs the precise reason.

        A success costs two durable transactions: the throttle reservation
        with the intent, committed before the catalog is called (concurrent
        tries count the reservation; a crash after the catalog redeemed
        finds the intent), and the grant, which also closes the reservation.
        The intent is written before the GET has told the voucher's
        currency, so it holds the project's, the default one for a project
        that has none: a voucher in another currency moves the project to
        it in a transaction of its own, before anything is redeemed, when
        nothing else holds the project's currency (see ``docs/voucher-catalog.md``).
        """
        at = self.times.change(at)
        project_id = inputs.project_id(project_id)
        code = catalog_base.normalize_code(code)
        key = catalog_base.idempotency_key(project_id, code)
        held: list[str] = []  # the currency the intent holds, once written

        def intend(conn: Connection) -> None:
            held[:] = [record_first_intent(conn, project_id=project_id, code=code, key=key,
                                           default=self.default_currency(), at=at)]

        try:
            status, attempt = self.throttle.reserve(
                project_id, at,
                first=lambda conn: activations.status(conn, project_id, code),
                # pending: resumed below; granted: read back. Neither tries a code.
                skip=lambda found: found is not None,
                then=intend,
            )
        except exceptions.TooManyAttempts:
            if held:  # written, then counted over the limit (off SQLite)
                self._abandon(project_id, code, key, attempt=None)
            raise
        if status == "granted":
            return self.database.read(
                lambda conn: _granted_credit(conn, project_id, code, at=at)
            ), False
        if status == "pending":
            return self._resume(project_id, code, key, at=at)
        assert attempt is not None and held
        return self._first_try(project_id, code, key, held=held[0], attempt=attempt, at=at)

    def _first_try(self, project_id: str, code: str, key: str, *, held: str, attempt: str,
                   at: dt.datetime) -> tuple[models.Credit, bool]:
        """The GET, then the redemption and the grant, for an intent this try wrote."""
        masked = catalog_base.mask_code(code)
        redeeming = False
        try:
            # The GET and the POST share one time budget: the activation as a
            # whole, not each call, is what must not stall the caller.
            with self.catalog.deadline():
                used_up: catalog_base.VoucherAlreadyRedeemed | None = None
                try:
                    voucher = self.catalog.get(code)
                    try:
                        catalog_base.check_usable(voucher, code, at)
                    except catalog_base.VoucherAlreadyRedeemed as error:
                        used_up = error
                except catalog_base.REFUSALS as error:
                    self._refuse(project_id, masked, error, attempt=attempt, at=at,
                                 drop_intent=(code, key))
                if used_up is not None:
                    # Maybe by this very intent: another try of the code found
                    # it and redeemed under its key (see _resume), after moving
                    # the project to the voucher's currency if it had to. Then
                    # the redemption's answer tells ours from another's.
                    held = self.database.read(
                        lambda conn: projects.currency(conn, project_id)) or held
                    if held != voucher.currency:  # not ours: used up, as the GET said
                        self._refuse(project_id, masked, used_up, attempt=attempt, at=at,
                                     drop_intent=(code, key))
                    LOG.info("voucher %s: %s; the redemption decides", masked, used_up)
                self._hold_currency(project_id, code, key, held=held,
                                    wanted=voucher.currency, at=at)
                LOG.info("voucher %s: redeeming for project %s", masked, project_id)
                redeeming = True
                return self._redeem_and_grant(project_id, code, key,
                                              currency=voucher.currency, attempt=attempt,
                                              at=at)
        except exceptions.VoucherRefused:
            raise  # recorded as a failed attempt by _refuse
        except Exception as error:
            # Not the customer's doing (catalog down or broken, ledger error,
            # wrong currency): no failed attempt is held against the project.
            if redeeming:  # the catalog may have redeemed: the intent stays
                if not isinstance(error, exceptions.CurrencyMismatch):  # logged already
                    _left_pending(masked, project_id, error)
                self._keep_sent(project_id, code, key, currency=voucher.currency,
                                attempt=attempt, at=at)
            else:
                self._abandon(project_id, code, key, attempt=attempt)
            raise

    def _resume(self, project_id: str, code: str, key: str, *, at: dt.datetime
                ) -> tuple[models.Credit, bool]:
        """Finish an activation whose intent another try wrote (crashed, or still running).

        It tries no new code (the catalog may have redeemed this one under
        the intent's key): no throttle, so that an operator can finish it
        even for a throttled project, and the redemption's answer, not the
        GET's, decides whether the code was redeemed. The GET only tells the
        voucher's currency, which the project must hold before anything is
        redeemed: the intent may have been written before any GET.
        """
        LOG.warning("voucher %s: resuming a pending activation for project %s",
                    catalog_base.mask_code(code), project_id)
        with self.catalog.deadline():
            # Once a POST under the key may have been sent, the redemption its
            # replay answers, not this lookup, tells the currency: the voucher
            # may have been moved to another one since (_redeem_and_grant
            # moves the project to the redemption's, or keeps the intent).
            refused: catalog_base.CatalogError | None = None
            try:
                currency: str | None = self.catalog.get(code).currency
            except catalog_base.REFUSALS as error:
                currency = None  # used up by this intent, or gone: the redemption decides
                refused = error

            def claim(conn: Connection) -> str | None:
                # The intent is marked as sent before the POST, in the
                # voucher's currency: the try that wrote it, still running
                # (its GET failing now), must not drop it and release the
                # project's currency once this POST may have redeemed.
                row = activations.find(conn, project_id, code, lock=True)
                if row is not None and (row.status == "granted" or row.sent):
                    # Granted: the POST replays, the grant reads it back. Sent:
                    # the catalog may have redeemed, in the currency the voucher
                    # had then; moving the project to today's could make a
                    # redeemed code ungrantable, or drop its intent.
                    return "replayed"
                moving = currency is not None and (
                    projects.currency(conn, project_id, lock=True) != currency)
                if moving or row is None:
                    if currency is None:
                        # Its first try dropped it, before any POST under its
                        # key (it was not marked): nothing is redeemed.
                        return None
                    rewrite_intent(conn, project_id=project_id, code=code, key=key,
                                   currency=currency, at=at)
                activations.mark_sent(conn, key)
                return "claimed"

            try:
                claimed = self.database.write(claim)
            except exceptions.CurrencyMismatch:
                # A try whose POST failed marked its intent (replayed above,
                # whatever the lookup says). Unmarked, the intent is a crash's:
                # before its POST, nothing was redeemed, and a row left pending
                # could never be finished. (After it, with the voucher moved to
                # another currency since, the catalog's redemption is lost to
                # us: tests/service/test_voucher_currency_edited.py's xfail.)
                self._abandon(project_id, code, key, attempt=None)
                raise
            if claimed is None:
                assert refused is not None
                self._refuse(project_id, catalog_base.mask_code(code), refused, attempt=None,
                             at=at)
            try:
                # A POST that may redeem the code anew must answer in the
                # currency the lookup told and the project now holds; a replay
                # answers what was redeemed then.
                return self._redeem_and_grant(
                    project_id, code, key, currency=currency if claimed == "claimed" else None,
                    attempt=None, at=at)
            except (exceptions.VoucherRefused, exceptions.CurrencyMismatch):
                raise  # recorded as a failed attempt, or logged, by _redeem_and_grant
            except Exception as error:
                _left_pending(catalog_base.mask_code(code), project_id, error)
                raise

    def _hold_currency(self, project_id: str, code: str, key: str, *, held: str | None,
                       wanted: str, at: dt.datetime) -> None:
        """Make the project hold the voucher's currency before the catalog redeems.

        Mostly it does already (the intent fixed the default one, and the
        voucher is in it). Otherwise the intent is written again with the
        voucher's currency, in one transaction: the project moves to it when
        nothing else holds its currency, or CurrencyMismatch is raised.
        """
        if held == wanted:
            return

        def move(conn: Connection) -> None:
            # The activation's row, then the project's: the module's lock order
            # (its docstring). A resume holding the row is waited for here.
            row = activations.find(conn, project_id, code, lock=True)
            if projects.currency(conn, project_id, lock=True) == wanted:
                return  # another try of this code moved it
            rewrite_intent(conn, project_id=project_id, code=code, key=key, currency=wanted,
                           at=at)
            if row is not None and row.sent:
                activations.mark_sent(conn, key)

        self.database.write(move)

    def _abandon(self, project_id: str, code: str, key: str, *, attempt: str | None) -> None:
        """Drop an intent the catalog was never asked to redeem, with the try's reservation.

        Best effort, like :meth:`Throttle.drop`: an intent left behind is
        only a pending activation, finished by the next try of the code.
        """
        def drop(conn: Connection) -> None:
            _drop_intent(conn, project_id, code, key)
            if attempt is not None:
                activations.drop_attempt(conn, attempt)

        try:
            self.database.write(drop)
        except Exception as error:
            LOG.warning("voucher activation for project %s could not be abandoned (%s): it "
                        "stays pending until the same code is tried again",
                        project_id, describe_failure(error))
            return
        self.release_currency(project_id)

    def _keep_sent(self, project_id: str, code: str, key: str, *, currency: str,
                   attempt: str, at: dt.datetime) -> None:
        """Mark a first try's intent as sent after its POST failed, and drop its reservation.

        A later try then takes the replay's redemption, not its own lookup,
        for the truth (see :meth:`_resume`). Best effort, in one transaction,
        like :meth:`Throttle.drop`: unmarked, the intent is what a crash
        after the POST leaves.

        The intent may be gone: a resume that could not know this POST was on
        its way dropped it (its lookup in a currency the project cannot take,
        or its own POST refused). The catalog may have redeemed under the key
        all the same: the intent is written again, marked, holding the
        project's currency (``currency``, the voucher's as this try looked it
        up, for a project whose currency was released meanwhile).
        """
        def keep(conn: Connection) -> None:
            # The row first, through the index every other locking statement
            # of the activation goes through: MariaDB locks the index entries
            # an UPDATE by key reads, and a claim holding the row then marking
            # it by key deadlocked with an UPDATE by key waiting for the row.
            if activations.find(conn, project_id, code, lock=True) is None:
                # The project's row, then the intent's INSERT (the module's
                # lock order). A new try that wrote the intent since the read
                # above makes the INSERT fail: the ledger retries, and the
                # read then finds it.
                if projects.currency(conn, project_id, lock=True) is None:
                    projects.insert(conn, project_id, currency, at=at)
                activations.record_intent(conn, project_id=project_id, code=code, key=key,
                                          at=at)
                LOG.warning("voucher %s: the activation for project %s, dropped by another "
                            "try during this one's redemption, is written again: the catalog "
                            "may have redeemed it", catalog_base.mask_code(code), project_id)
            activations.mark_sent(conn, key)  # nothing when granted meanwhile
            activations.drop_attempt(conn, attempt)

        try:
            self.database.write(keep)
        except Exception as error:
            LOG.warning("voucher attempt %s could not be closed (%s): it counts as failed "
                        "until its window ends", attempt, describe_failure(error))

    def unblock(self, project_id: str, *, reason: str, operator: str,
                at: dt.datetime | None = None) -> Unblock:
        """An operator ends the project's throttle window now (``voucher unblock``)."""
        return self.throttle.unblock(project_id, reason=reason, operator=operator,
                                     at=self.times.change(at))

    def attempts(self, project_id: str, *, everything: bool = False,
                 at: dt.datetime | None = None) -> list[dict[str, Any]]:
        """The project's tries and unblocks (``voucher attempts``)."""
        return self.throttle.history(project_id, at=self.times.read(at), everything=everything)

    def pending(self) -> list[dict[str, Any]]:
        """Activations recorded but not granted: a crash after the intent, or a try running.

        Finish one by activating the same code for the same project again.
        """
        return self.database.read(activations.pending)

    def _redeem_and_grant(
        self,
        project_id: str,
        code: str,
        key: str,
        *,
        currency: str | None,
        attempt: str | None,
        at: dt.datetime,
    ) -> tuple[models.Credit, bool]:
        """The catalog's POST, then one transaction: the grant and the closed reservation.

        Returns (credit, created): a concurrent activation of the same code
        for the same project may have granted it first.
        """
        masked = catalog_base.mask_code(code)
        try:
            redemption = self.catalog.redeem(code, project_id=project_id, idempotency_key=key,
                                             at=at)
        except catalog_base.REFUSALS as error:
            # A refusal means nothing is redeemed under this key: the intent
            # goes (with the failed attempt, in one transaction), and the
            # code may be tried again later.
            self._refuse(project_id, masked, error, attempt=attempt, at=at,
                         drop_intent=(code, key), sent=True)
        # Any other failure above or below leaves the intent pending: the
        # catalog may have committed the redemption (timeout, lost or broken
        # answer), and only a replay with the same key can tell.
        catalog_base.check_redemption(redemption, code=code, project_id=project_id,
                                      currency=currency)

        def grant(conn: Connection) -> tuple[models.Credit, bool]:
            row = activations.find(conn, project_id, code, lock=True)
            if row is None:  # the intent was dropped by a concurrent failure: record anew
                record_intent(conn, project_id=project_id, code=code, key=key,
                              currency=redemption.currency, at=at)
                row = activations.find(conn, project_id, code, lock=True)
                assert row is not None
            elif (currency is None or row.sent) and row.status != "granted" and (
                    projects.currency(conn, project_id, lock=True) != redemption.currency):
                # A resume whose GET was refused sent the key without knowing
                # the voucher's currency, or replayed it: the redemption tells
                # it. Or, marked, another try moved the project meanwhile (its
                # lookup after the voucher was moved to another currency). The
                # intent moves the project to the redemption's, as
                # _hold_currency would have before the POST, or
                # CurrencyMismatch leaves the intent pending.
                rewrite_intent(conn, project_id=project_id, code=code, key=key,
                               currency=redemption.currency, at=at)
                row = activations.find(conn, project_id, code, lock=True)
                assert row is not None
            # The reservation closes with the grant: one durable commit less
            # than a transaction of its own, and a success is never left
            # counting as a running try. A grant that fails rolls it back
            # with everything else; the caller then drops it.
            if attempt is not None:
                Throttle.succeeded(conn, attempt, reason=f"{masked}: activated")
            if row.status == "granted":
                assert row.credit_id is not None
                return _credit(conn, row.credit_id, at=at), False
            # Activation is when the catalog redeemed the code: a run that
            # finishes a pending activation days later does not extend it.
            activated = min(at, redemption.redeemed_at)
            # The credit starts at activation, or at a later start the catalog
            # sets; never earlier, like purchased credit (from its payment): a
            # voucher does not pay for usage from before it was activated
            # (an invoice or a re-rated period settled later). Days count
            # from that start: the credit never ends before it begins.
            valid_from = max(activated, redemption.valid_from or activated)
            ends = [d for d in (
                redemption.valid_until,
                valid_from + dt.timedelta(days=redemption.validity_days)
                if redemption.validity_days else None,
            ) if d is not None]
            projects.ensure(conn, project_id, redemption.currency, at=at)
            granted = credits.grant(
                conn,
                project_id=project_id,
                kind="voucher",
                source=code,
                description=redemption.description or descriptions.voucher(code),
                currency=redemption.currency,
                amount=redemption.amount,
                products=redemption.products,
                valid_from=valid_from,
                valid_until=min(ends) if ends else None,
                at=at,
            )
            activations.mark_granted(conn, row.id, credit_id=granted.id,
                                     redemption_id=redemption.id, at=at)
            return credits.result(granted, at=at).model(), True

        try:
            credit, created = self.database.write(grant)
        except exceptions.CurrencyMismatch:
            found = self.database.read(lambda conn: projects.currency(conn, project_id))
            # Redeemed at the catalog, and no credit can come of it here: only
            # people can, so the intent stays (pending, marked as sent).
            LOG.error("voucher %s: the catalog redeemed it (%s) for project %s in %s, but "
                      "the project bills in %s: its activation stays pending (ovh-credit "
                      "voucher pending). Activating the same code for the same project "
                      "again finishes it once the project can take %s (nothing holds %s: "
                      "no credit, pending order or other activation), or once the catalog's "
                      "operator has undone that redemption and the voucher is in %s",
                      masked, redemption.id, project_id, redemption.currency, found,
                      redemption.currency, found, found)
            raise exceptions.CurrencyMismatch(
                _("voucher %(code)s was redeemed in %(currency)s, but project %(project)s "
                  "bills in %(found)s: it stays pending until support resolves it")
                % {"code": masked, "currency": redemption.currency, "project": project_id,
                   "found": found}) from None
        if created:  # by this call, not a concurrent one: sent once, after its commit
            LOG.info("voucher %s redeemed (%s): credit %s granted to project %s",
                     masked, redemption.id, credit.id, project_id)
            self.notifier.emit([events.credit_granted(credit, at=at, voucher=masked)])
        return credit, created

    def _refuse(
        self,
        project_id: str,
        masked: str,
        error: catalog_base.CatalogError,
        *,
        attempt: str | None,
        at: dt.datetime,
        drop_intent: tuple[str, str] | None = None,
        sent: bool = False,
    ) -> NoReturn:
        """Record a failed try and raise: the customer sees one message, the log the reason.

        The failure is recorded in one transaction with dropping the intent
        ``drop_intent`` (its code and key): one a resumed try may have sent to
        the catalog only when the catalog refused its key (``sent``).
        """
        LOG.warning("voucher %s refused for project %s: %s", masked, project_id, error)
        reason = f"{masked}: {error}"
        # A try that reserved nothing (a resumed activation) is recorded under
        # a key drawn here, once: a retry after a lost COMMIT finds its row.
        key = attempt if attempt is not None else new_attempt()

        def record(conn: Connection) -> None:
            if drop_intent is not None:
                _drop_intent(conn, project_id, *drop_intent, sent=sent)
            Throttle.failed(conn, project_id, key, reason=reason, at=at)

        self.database.write(record)
        if drop_intent is not None:
            self.release_currency(project_id)
        raise exceptions.VoucherRefused(exceptions.message_of(error)) from error

    def release_currency(self, project_id: str) -> None:
        """Undo the currency a refused redemption's intent fixed, if nothing else holds it.

        The intent fixes the project's currency (see :func:`record_intent`);
        when the catalog then refuses, a project that has nothing else (no
        credit, order nor activation) should not keep the voucher's currency
        for its next order. Best effort, in a transaction of its own: a
        concurrent first order may reference the row meanwhile, and then it
        stays.
        """
        try:
            self.database.write(lambda conn: projects.forget_if_empty(conn, project_id))
        except Exception as error:
            LOG.warning("project %s: its currency could not be released: %s", project_id,
                        describe_failure(error))


def _drop_intent(conn: Connection, project_id: str, code: str, key: str, *,
                 sent: bool = False) -> None:
    """Drop the pending intent under ``key`` (:func:`activations.drop_intent`), its row
    locked first the way every locking statement of an activation locks it.

    Through the (project, code) index, then by key: MariaDB locks the index
    entries a statement reads, and a DELETE by key waiting for the row a
    resume's claim held kept the key's entry the claim then needed to mark
    the row as sent (a deadlock, one of them retried by the ledger).
    """
    activations.find(conn, project_id, code, lock=True)
    activations.drop_intent(conn, key, sent=sent)


def _left_pending(masked: str, project_id: str, error: BaseException) -> None:
    """Say that an activation stays pending after the redemption was asked for.

    The catalog may have redeemed the code (a timeout, a lost answer) or did
    (the grant failed): the customer may have lost the voucher and has no
    credit until someone activates the same code for the same project again.
    """
    LOG.warning("voucher %s: activation for project %s left pending (%s): the catalog "
                "may have redeemed it; activating the same code for the same project "
                "again finishes it (ovh-credit voucher pending lists them)",
                masked, project_id, describe_failure(error))


def record_first_intent(
    conn: Connection, *, project_id: str, code: str, key: str, default: str, at: dt.datetime
) -> str:
    """The intent of a new try, written with its reservation: the currency it holds.

    The GET has not told the voucher's currency yet: the intent holds the
    project's, or fixes ``default`` for a project that has none, and the
    activation moves the project to the voucher's currency before the
    redemption if they differ (``Vouchers._hold_currency``). The caller read
    that the project has no activation of ``code``.
    """
    held = projects.currency(conn, project_id, lock=True)
    if held is None:
        projects.insert(conn, project_id, default, at=at)
        held = default
    activations.record_intent(conn, project_id=project_id, code=code, key=key, at=at)
    return held


def record_intent(
    conn: Connection, *, project_id: str, code: str, key: str, currency: str, at: dt.datetime
) -> None:
    """The activation's intent, holding ``currency``, unless the activation exists.

    It fixes the project's currency, as an order does: were it fixed only by
    the grant, an order in another currency made meanwhile would leave the
    grant impossible after the catalog had redeemed the code.
    """
    if activations.find(conn, project_id, code) is not None:
        return
    # ensure locks the project's row (off SQLite) until the intent commits: a
    # refused activation's release_currency must see this intent, not delete
    # the row under it. A currency nothing holds any more is released for it.
    try:
        projects.ensure(conn, project_id, currency, at=at)
    except exceptions.CurrencyMismatch:
        found = projects.currency(conn, project_id)
        raise exceptions.CurrencyMismatch(
            _("this voucher is in %(currency)s but project %(project)s bills in %(found)s")
            % {"currency": currency, "project": project_id, "found": found}
        ) from None
    activations.record_intent(conn, project_id=project_id, code=code, key=key, at=at)


def rewrite_intent(
    conn: Connection, *, project_id: str, code: str, key: str, currency: str, at: dt.datetime
) -> None:
    """The pending intent under ``key`` written again, holding ``currency``.

    Dropped first: the intent alone must not keep the project in its old
    currency. A project nothing else holds moves; otherwise CurrencyMismatch,
    and the transaction rolls the drop back with it. What it was marked with
    (sent) is the caller's to write again.
    """
    activations.drop_intent(conn, key, sent=True)
    record_intent(conn, project_id=project_id, code=code, key=key, currency=currency, at=at)


def _granted_credit(
    conn: Connection, project_id: str, code: str, *, at: dt.datetime
) -> models.Credit:
    row = activations.find(conn, project_id, code)
    assert row is not None and row.credit_id is not None
    return _credit(conn, row.credit_id, at=at)


def _credit(conn: Connection, credit_id: int, *, at: dt.datetime) -> models.Credit:
    row = credits.row(conn, credit_id)
    assert row is not None
    return credits.result(row, at=at).model()
