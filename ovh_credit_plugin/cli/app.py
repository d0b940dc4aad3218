"""The ``ovh-credit`` operator command (cliff)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import gc
import logging
import os
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, NoReturn

from cliff import _argparse as cliff_argparse
from cliff import command as cliff_command
from cliff import help as cliff_help
from cliff.app import App
from cliff.commandmanager import CommandManager
from oslo_config import cfg

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.conf import (
    DEFAULT_SQLITE_CONNECTION,
    check_config_files,
    config_paths,
    ledger_connection,
    not_utf8,
    register_host_database_opt,
    register_opts,
    uses_fallback_ledger,
)
from ovh_credit_plugin.i18n import _

if TYPE_CHECKING:
    from ovh_credit_plugin.service import CreditService

PROG = "ovh-credit"
# oslo.messaging's drivers log through oslo_log, as "oslo.messaging._drivers...".
# urllib3 warns of each retry of the voucher catalog: "Retrying (CatalogRetry(...))
# after connection broken by ...", lines that are not the command's error.
_NOISY = ("stevedore", "alembic", "cliff", "oslo_service", "oslo_messaging", "oslo.messaging",
          "urllib3")
# Log lines of the plugin, and the notifications oslo.messaging's `log` driver
# writes: shown with -v, not in a command's normal output.
_OURS = ("ovh_credit_plugin", "oslo.messaging.notification")


def _version() -> str:
    try:
        return metadata.version("ovh-credit-plugin")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "unknown"


class _LazyVersion(argparse._VersionAction):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        self.version = f"{PROG} {_version()}"
        super().__call__(parser, namespace, values, option_string)


class _Help(cliff_help.HelpAction):
    """cliff's --help, without reading every installed distribution's metadata.

    cliff's list of commands names the distribution of each command that is
    not the app's; it finds them with ``packages_distributions()``, ~0.3 s.
    The commands here are the plugin's and cliff's own two (help, complete).
    """

    _DISTRIBUTIONS = {"ovh_credit_plugin": "ovh-credit-plugin", "cliff": "cliff"}

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        saved = cliff_command._dists_by_mods
        if saved is None:
            cliff_command._dists_by_mods = dict(self._DISTRIBUTIONS)  # type: ignore[assignment]
        try:
            super().__call__(parser, namespace, values, option_string)
        finally:
            cliff_command._dists_by_mods = saved


class _OneLineParser(cliff_argparse.ArgumentParser):
    """The global options' usage errors as one line, exit status 2 (argparse
    prints its usage first: three lines, unlike every other usage error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}; see '{PROG} --help'\n")


class _StartUp:
    """The garbage collector left out of a command's start-up.

    Before a command does any work, an ``ovh-credit`` process allocates some
    55,000 objects that live as long as it does (modules, classes, options,
    SQLAlchemy's tables and statements): the collector scanned them about 130
    times, once in full, 45-60 ms of a 0.5 s ``credit list`` (the import
    floor's own collections take ~25 ms; issue 15). Collection is paused
    from :func:`main`'s start until the service is built; what exists then
    is frozen (``gc.freeze``: never scanned again) and collection resumes for
    the command's work, so a long ``settle`` run collects its garbage as
    usual (start-up leaves ~160 objects of garbage: frozen with the rest).

    Only for a run in the main thread of a process that froze nothing
    itself. :meth:`end` gives an embedding process (tests) its collector
    back. The console script's process ends with its run: what start-up
    made stays frozen, and the interpreter's collections at exit skip it
    (60-100 ms of a command here; nothing of it needs a finalizer
    at exit: the ledger is closed by ``clean_up``, output flushed by the
    interpreter, logging by its ``atexit`` hook).
    """

    def __init__(self) -> None:
        self._paused = (gc.isenabled() and gc.get_freeze_count() == 0
                        and threading.current_thread() is threading.main_thread())
        self._frozen = False
        if self._paused:
            gc.disable()

    def over(self) -> None:
        """The command's work begins."""
        if self._paused:
            gc.freeze()
            self._frozen = True
            gc.enable()
            self._paused = False

    def end(self, *, exiting: bool) -> None:
        if self._frozen and not exiting:
            gc.unfreeze()
        if self._paused:
            gc.enable()


def _console_filter(record: logging.LogRecord) -> bool:
    """What the console shows of the lines a log file gets (``--log-file`` without -v):
    the levels it shows without a log file."""
    name = record.name
    # Ours first: "oslo.messaging.notification" is under a noisy one.
    if any(name == ours or name.startswith(f"{ours}.") for ours in _OURS):
        return record.levelno >= logging.ERROR
    if any(name == noisy or name.startswith(f"{noisy}.") for noisy in _NOISY):
        return record.levelno >= logging.CRITICAL
    return True


class _Commands(CommandManager):
    """cliff's command table, where an empty argument ends the command's words.

    cliff takes each word of a command line for a prefix of a command's word
    ('cred li' is 'credit list'); the empty word is a prefix of every word, so
    ``ovh-credit settle "$FILE"`` with the variable unset ran ``settlement show``.
    """

    def _get_last_possible_command_index(self, argv: list[str]) -> int:
        for index, arg in enumerate(argv):
            if arg.startswith("-") or not arg:
                return index
        return len(argv)


class CreditApp(App):
    CONSOLE_MESSAGE_FORMAT = f"{PROG}: %(message)s"
    # cliff names the program after sys.argv[0] ("app" under python -m).
    NAME = PROG

    def __init__(self) -> None:
        manager = _Commands("ovh_credit_plugin.cli")
        from ovh_credit_plugin.cli import commands

        for name, command in commands.COMMANDS.items():
            manager.add_command(name, command)
        super().__init__(
            description="Prepaid cloud credit and vouchers: operator commands.",
            # Looked up when --version asks (_LazyVersion): finding the
            # distribution scans every installed one, ~20 ms of every run.
            version="",
            command_manager=manager,
            deferred_help=True,
        )
        self._service: CreditService | None = None
        self._conf: cfg.ConfigOpts | None = None
        self.start_up: _StartUp | None = None

    def build_option_parser(
        self, description: str | None, version: str | None, argparse_kwargs: Any = None
    ) -> Any:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.__class__ = _OneLineParser
        for action in parser._actions:
            if isinstance(action, argparse._VersionAction):
                action.__class__ = _LazyVersion
        parser.add_argument(
            "--config-file",
            action="append",
            default=[],
            metavar="PATH",
            help="oslo.config file with [cloud_credit] and [voucher_catalog] sections "
            "(repeatable; later files win). Default: the usual oslo.config locations "
            "for project 'ovh-credit-plugin', e.g. /etc/ovh-credit-plugin/ovh-credit-plugin.conf.",
        )
        from ovh_credit_plugin.cli.commands import parse_time

        parser.add_argument(
            "--now",
            type=parse_time,
            default=None,
            metavar="TIME",
            help="Run as if the clock said TIME (ISO 8601, UTC): for rehearsals on a copy "
            "of a ledger, demos and tests, never on a live ledger. Changes are refused "
            "with an --at later than now; --now moves that now.",
        )
        return parser

    def print_help_if_requested(self) -> None:
        # cliff's own, with _Help for cliff's HelpAction.
        if self.deferred_help and self.options.deferred_help:
            _Help([], argparse.SUPPRESS, default=self)(self.parser, self.options, None, None)

    def configure_logging(self) -> None:
        before = list(logging.getLogger().handlers)  # an embedding process's (tests)
        try:
            super().configure_logging()
        except OSError as error:  # --log-file: cliff would print the bare OSError
            unusable = _("cannot open the log file %(path)s: %(reason)s") % {
                "path": self.options.log_file, "reason": error.strerror or error}
            self.stderr.write(f"{PROG}: {unusable}\n")
            raise SystemExit(1) from None
        quiet = self.options.verbose_level <= 1
        # --log-file without -v: the file gets what a host's log would (ours
        # from INFO, the libraries' warnings: a cron job's expiry summary, a
        # retry, a notification that failed), the console only the errors.
        to_file = bool(self.options.log_file) and quiet
        for name in _OURS:
            # The command's own error line says what matters; the library's
            # warnings are for -v runs, log files and host logs. With -v, all
            # of ours: the log driver's notifications would otherwise take the
            # level of their parent, "oslo.messaging", one of the noisy below.
            logging.getLogger(name).setLevel(
                logging.DEBUG if not quiet else logging.INFO if to_file else logging.ERROR)
        for noisy in _NOISY:
            if quiet:
                # stevedore logs "Could not load <driver>" before the error we
                # raise for it: one line on stderr is ours.
                logging.getLogger(noisy).setLevel(logging.WARNING if to_file
                                                  else logging.CRITICAL)
            elif self.options.verbose_level == 2:
                logging.getLogger(noisy).setLevel(logging.WARNING)
        if to_file:
            for handler in logging.getLogger().handlers:
                # cliff's console, not its file nor an embedding process's handlers.
                if handler not in before and not isinstance(handler, logging.FileHandler):
                    handler.addFilter(_console_filter)

    @property
    def conf(self) -> cfg.ConfigOpts:
        if self._conf is None:
            conf = cfg.ConfigOpts()
            register_opts(conf)
            register_host_database_opt(conf)
            files = self.options.config_file or None
            try:
                conf(args=[], project="ovh-credit-plugin", default_config_files=files)
            except cfg.Error as error:
                raise exceptions.ConfigError(str(error).splitlines()[0]) from None
            except UnicodeDecodeError:
                raise not_utf8(
                    files or cfg.find_config_files(project="ovh-credit-plugin")) from None
            check_config_files(config_paths(conf))
            self._conf = conf
        return self._conf

    @property
    def ledger_url(self) -> str:
        """The ledger's URL: the configured one, else the fallback file (see
        :attr:`uses_fallback_ledger`)."""
        return ledger_connection(self.conf) or DEFAULT_SQLITE_CONNECTION

    @property
    def uses_fallback_ledger(self) -> bool:
        """True when no config file names a connection: ``./ovh-credit-ledger.sqlite``."""
        return uses_fallback_ledger(self.conf)

    @property
    def service(self) -> CreditService:
        if self._service is None:
            # Imported by the commands that use the ledger, not by --help.
            from ovh_credit_plugin.service import facade, inputs

            self.uses_fallback_ledger  # noqa: B018 - refuses an empty connection
            now = self.options.now
            self._service = facade.CreditService.from_conf(
                self.conf, connection=self.ledger_url,
                clock=(lambda: now) if now is not None else inputs.now,
            )
            if self.start_up is not None:
                self.start_up.over()
        return self._service

    def run_subcommand(self, argv: list[str]) -> int:
        # cliff answers an unknown command (or an unknown option before it,
        # left in argv) with several lines on stdout: a script reading stdout
        # would take them for output.
        try:
            self.command_manager.find_command(argv)
        except ValueError:
            if argv[0].startswith("-"):
                problem = f"unknown option {argv[0]!r}"
            else:
                # An empty word (an unset shell variable) is shown as such.
                words = [a or "''" for a in argv[:2] if not a.startswith("-")]
                problem = f"unknown command {' '.join(words)!r}"
                # cliff's fuzzy matches suggest 'audit' for 'bogus': only the
                # commands of the same group, or of a near-enough name, help.
                matches = [m for m in map(str, self.get_fuzzy_matches(argv[0]))
                           if m.split()[0][:3] == argv[0][:3]]
                # Closest to what was typed first ('credit list' for 'credit lst').
                typed = " ".join(words)
                matches = sorted(matches, key=lambda m: -difflib.SequenceMatcher(
                    None, typed, m).ratio())[:3]
                if matches:
                    problem += f" (did you mean {' or '.join(repr(m) for m in matches)}?)"
            return self._usage_error(problem)
        return int(super().run_subcommand(argv))

    def interact(self) -> None:
        # No command: cliff would start an interactive shell, which reads
        # commands from stdin (EOF in scripts and pipes).
        raise SystemExit(self._usage_error("a command is required"))

    def _usage_error(self, problem: str) -> int:
        self.stderr.write(f"{PROG}: error: {problem}; see '{PROG} --help'\n")
        return 2

    def clean_up(self, cmd: Any, result: int, err: BaseException | None) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None


#: pydantic looks for plugins (observability hooks for validation) in every
#: installed distribution's entry points when a process first builds a model:
#: 50-100 ms of a command's run on a host with many distributions. A command
#: line run uses none; an operator who wants one sets the variable (empty: all).
_PYDANTIC_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"


#: cliff's exit status when the reader of stdout went away (128 + SIGPIPE).
_SIGPIPE_EXIT = 141


def _drop_stdout() -> None:
    """Stdout's reader went away (``| head -1``): what is still buffered can never be
    written, and the interpreter would print the BrokenPipeError of its last flush."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor underneath
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    tuned = [logging.getLogger(name) for name in (*_OURS, *_NOISY)]
    levels = [logger.level for logger in tuned]
    plugins = os.environ.get(_PYDANTIC_PLUGINS)
    if plugins is None:
        os.environ[_PYDANTIC_PLUGINS] = "__all__"
    start_up = _StartUp()
    try:
        app = CreditApp()
        app.start_up = start_up
        code = int(app.run(list(sys.argv[1:] if argv is None else argv)))
        if code == _SIGPIPE_EXIT and argv is None:
            _drop_stdout()
        return code
    except SystemExit as exit_:  # argparse's usage errors, already printed on one line
        if exit_.code is None:  # --help (cliff's HelpExit): success, as Python has it
            return 0
        return exit_.code if isinstance(exit_.code, int) else 2
    finally:
        # cliff adds console handlers to the root logger on every run; an
        # embedding process (tests, a host) gets its logging back as it was.
        root.handlers[:] = handlers
        root.setLevel(level)
        for logger, saved in zip(tuned, levels, strict=True):
            logger.setLevel(saved)
        if plugins is None:  # an embedding process keeps its own setting
            os.environ.pop(_PYDANTIC_PLUGINS, None)
        # No argv: the process's own command line, as the console script runs.
        start_up.end(exiting=argv is None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
