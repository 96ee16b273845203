"""``bnn-keras models``."""

from __future__ import annotations

import click


def _shape(value: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected H,W,C, got {value!r}") from None
    if len(shape) != 3:
        raise click.BadParameter(f"expected H,W,C, got {value!r}")
    return shape  # type: ignore[return-value]


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


@click.command()
@click.argument("patterns", nargs=-1)
@click.option("--input-shape", default="224,224,3", show_default=True, help="H,W,C")
@click.option("--num-classes", type=click.IntRange(min=2), default=1000, show_default=True)
@click.option("--all-variants", is_flag=True, help="One row per variant, not per model.")
@click.option("--exact", is_flag=True, help="Exact integers instead of k/M/G.")
def models(patterns, input_shape, num_classes, all_variants, exact) -> None:
    """List the registered models with parameter and MAC counts (larq's model profile).

    PATTERNS (shell-style, e.g. 'bnext_*') keep only the matching names. OPs = binary
    MACs / 64 + float MACs.
    """
    from fnmatch import fnmatchcase

    import tf_keras as keras

    from bnn_keras import models as registry

    shape = _shape(input_shape)
    fmt = (lambda n: f"{int(n):,}") if exact else _human
    header = ("model", "variant", "variants", "total params", "binary params", "binary MACs",
              "float MACs", "OPs")
    names = [n for n in registry.names()
             if not patterns or any(fnmatchcase(n, p) for p in patterns)]
    if not names:
        raise click.UsageError(f"no registered model matches {' '.join(patterns)}; "
                               f"known: {', '.join(registry.names())}")
    rows = []
    for name in names:
        entry = registry.get(name)
        for variant in entry.variants if all_variants else entry.variants[:1]:
            model = registry.create(name, variant, num_classes=num_classes, input_shape=shape)
            s = registry.model_stats(model)
            rows.append((name, variant, "/".join(entry.variants), fmt(s.total_params),
                         fmt(s.binary_params), fmt(s.binary_macs), fmt(s.float_macs),
                         fmt(s.ops)))
            del model
            keras.backend.clear_session()
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    click.echo(f"models at {shape[0]}x{shape[1]}x{shape[2]}, {num_classes} classes")
    for row in (header, *rows):
        click.echo("  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths))))
