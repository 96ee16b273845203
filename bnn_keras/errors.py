"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class BnnError(Exception):
    """An error caused by bad input (a name, a file, an option) rather than a bug."""
