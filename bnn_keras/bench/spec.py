"""What a benchmark measures, shared by the local and the on-board benchmark."""

from __future__ import annotations

from dataclasses import dataclass

from bnn_keras.errors import BnnError


@dataclass(frozen=True)
class BenchSpec:
    """Each model at each of ``threads``: ``runs`` timed runs after ``warmup`` untimed ones.

    ``use_indirect_bgemm`` selects LCE's indirect BGEMM kernels for the binary convs.
    """

    threads: tuple[int, ...] = (1,)
    runs: int = 50
    warmup: int = 5
    use_indirect_bgemm: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "threads", tuple(self.threads))
        if not self.threads or min(self.threads) < 1 or self.runs < 1 or self.warmup < 0:
            raise BnnError("threads and runs must be >= 1 and warmup >= 0")

    def tool_flags(self, threads: int) -> list[str]:
        """``lce_benchmark_model``'s flags for one run at ``threads`` threads."""
        return [f"--num_threads={threads}", f"--num_runs={self.runs}",
                f"--warmup_runs={self.warmup}",
                f"--use_indirect_bgemm={'true' if self.use_indirect_bgemm else 'false'}"]
