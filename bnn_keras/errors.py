"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class BnnError(Exception):
    """An error caused by bad input (a name, a file, an option) rather than a bug."""


def first_line(err: BaseException, limit: int | None = 200) -> str:
    """The first line of ``err``'s message, cut to ``limit`` characters (``None``: whole),
    for a one-line error; the exception's type name when the message is empty."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else type(err).__name__


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (the CLI's handler, see
    :func:`bnn_keras.cli.errors.run_cli`) so that it stops as after Ctrl-C: ``finally``
    blocks and the atomic writers remove their temporary files."""


def interrupt_hint(err: KeyboardInterrupt) -> str:
    """What the code that was interrupted said it left (``err.hint``, set by
    :func:`bnn_keras.training.run.train`), or ``""``."""
    return getattr(err, "hint", "") or ""
