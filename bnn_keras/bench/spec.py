"""What a benchmark measures, shared by the local and the on-board benchmark."""

from __future__ import annotations

from dataclasses import dataclass

from bnn_keras.errors import BnnError


@dataclass(frozen=True)
class BenchSpec:
    """Each model at each of ``threads``: ``runs`` timed runs after ``warmup`` untimed ones.

    ``use_indirect_bgemm`` selects LCE's indirect BGEMM kernels for the binary convs;
    ``op_profiling`` asks the tool for its per-op profile (``--enable_op_profiling``).
    """

    threads: tuple[int, ...] = (1,)
    runs: int = 50
    warmup: int = 5
    use_indirect_bgemm: bool = False
    op_profiling: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "threads", tuple(self.threads))
        if not self.threads or min(self.threads) < 1 or self.runs < 1 or self.warmup < 0:
            raise BnnError("threads and runs must be >= 1 and warmup >= 0")

    def tool_flags(self, threads: int, *, profile: bool = False) -> list[str]:
        """``lce_benchmark_model``'s flags for one run at ``threads`` threads (with the op
        profile if ``profile`` and ``op_profiling``)."""
        flags = [f"--num_threads={threads}", f"--num_runs={self.runs}",
                 f"--warmup_runs={self.warmup}",
                 f"--use_indirect_bgemm={'true' if self.use_indirect_bgemm else 'false'}"]
        return flags + (["--enable_op_profiling=true"] if profile and self.op_profiling else [])
