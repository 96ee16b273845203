"""How the CLI reports failures: one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import os
import sys

import click

from bnn_keras.errors import BnnError, first_line

INTERRUPTED = ("interrupted (a training run continues with `bnn-keras train --resume`, or "
               "`--resume-from RUN_DIR` for one folder)")


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
    try:
        group.main(args=args, standalone_mode=False, prog_name="bnn-keras")
    except click.exceptions.Abort as err:
        # click turns Ctrl-C into Abort: it still gets the hint
        interrupted = isinstance(err.__cause__ or err.__context__, KeyboardInterrupt)
        click.echo(f"error: {INTERRUPTED if interrupted else 'aborted'}", err=True)
        sys.exit(130)
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except BnnError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"error: {INTERRUPTED}", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001
        if os.environ.get("BNN_KERAS_DEBUG"):
            raise
        first = first_line(err, limit=300) if str(err).strip() else ""
        click.echo(f"error: {type(err).__name__}: {first} "
                   "(set BNN_KERAS_DEBUG=1 for the traceback)", err=True)
        sys.exit(2)
