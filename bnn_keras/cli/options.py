"""Options several commands share."""

from __future__ import annotations

import functools

import click


def trust_code_option(command):
    """Add ``--trust-code`` to a command that loads ``.keras`` files: without it, a file
    whose layers or functions could run code is refused (:mod:`bnn_keras.trust`)."""

    @functools.wraps(command)
    def run(*args, trust_code: bool, **kwargs):
        from bnn_keras.trust import trusting_code

        with trusting_code(trust_code):
            return command(*args, **kwargs)

    return click.option(
        "--trust-code", is_flag=True,
        help="Load .keras files even when they name code outside Keras, larq and bnn_keras "
             "(Lambda layers, other modules' functions), which then runs: only for files "
             "whose author you trust.")(run)
