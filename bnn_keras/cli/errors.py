"""How the CLI reports failures: one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import click

from bnn_keras.errors import BnnError, Terminated, first_line, interrupt_hint


def _terminate(signum, frame):
    raise Terminated()


def _handle_sigterm():
    """Make SIGTERM raise :class:`Terminated`; the previous handler (``None`` outside the
    main thread, where Python cannot set one)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def _interrupted_message(err: KeyboardInterrupt) -> str:
    """``interrupted`` (Ctrl-C) or ``terminated`` (SIGTERM), with what the interrupted
    code says it left: only a training run knows whether there is a run to resume."""
    what = "terminated" if isinstance(err, Terminated) else "interrupted"
    hint = interrupt_hint(err)
    return f"{what} ({hint})" if hint else what


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Print each Python warning as one ``warning: ...`` line, as the CLI's own warnings
    are, instead of Python's file, line and source line (``BNN_KERAS_DEBUG=1`` keeps
    those)."""
    if os.environ.get("BNN_KERAS_DEBUG"):
        yield
        return

    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"warning: {first_line(message, limit=None)}", err=True)

    previous, warnings.showwarning = warnings.showwarning, show
    try:
        yield
    finally:
        warnings.showwarning = previous


def run_cli(group: click.Group, args: list[str] | None = None) -> None:
    """Run ``group``; print bad input as ``error: ...`` (exit 1, usage errors exit 2).

    Set ``BNN_KERAS_DEBUG=1`` to see the traceback of an unexpected error (and
    TensorFlow's start-up log lines, see :mod:`bnn_keras.cli.tf_logs`).
    """
    from bnn_keras.cli.tf_logs import import_tensorflow_quietly

    argv = sys.argv[1:] if args is None else args
    # help, the version and a bare `bnn-keras` (its help) answer without TensorFlow
    if argv and not {"-h", "--help", "--version"} & set(argv):
        import_tensorflow_quietly()
    # SIGTERM stops the command as Ctrl-C does (temporary files removed, one line), not
    # at once; the previous handler is put back for an in-process caller
    previous = _handle_sigterm()
    try:
        with one_line_warnings():
            group.main(args=args, standalone_mode=False, prog_name="bnn-keras")
    except click.exceptions.Abort as err:
        # click turns Ctrl-C into Abort (after printing an empty line): it gets the message
        cause = err.__cause__ or err.__context__
        if isinstance(cause, KeyboardInterrupt):
            _exit_interrupted(cause)
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except BnnError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt as err:
        _exit_interrupted(err)
    except Exception as err:  # noqa: BLE001
        if os.environ.get("BNN_KERAS_DEBUG"):
            raise
        first = first_line(err, limit=300) if str(err).strip() else ""
        click.echo(f"error: {type(err).__name__}: {first} "
                   "(set BNN_KERAS_DEBUG=1 for the traceback)", err=True)
        sys.exit(2)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_interrupted(err: KeyboardInterrupt) -> None:
    """One line saying the command was stopped; exit 143 for SIGTERM, 130 for Ctrl-C."""
    click.echo(f"error: {_interrupted_message(err)}", err=True)
    sys.exit(143 if isinstance(err, Terminated) else 130)
