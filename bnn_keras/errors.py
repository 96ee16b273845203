"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class BnnError(Exception):
    """An error caused by bad input (a name, a file, an option) rather than a bug."""


def first_line(err: BaseException, limit: int | None = 200) -> str:
    """The first line of ``err``'s message, cut to ``limit`` characters (``None``: whole),
    for a one-line error; the exception's type name when the message is empty."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else type(err).__name__
