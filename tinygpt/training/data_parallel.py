"""Data parallelism: N ranks compute exactly what one process computes, N times as fast at best.

Every rank holds the whole model and draws the same random windows (the same
seed, the same generator). A step's global batch is the windows one process
would use: ``grad_accum`` micro-batches of ``batch_size`` windows (M in all).
Rank r takes its contiguous share, windows [r M / N, (r + 1) M / N), in chunks of
at most ``batch_size``, and weights each chunk's mean loss by rows / M. The
all-reduced sum of the weighted gradients is then the mean gradient over the
global batch, the single-process gradient; clipping and AdamW see it on every
rank, so the weights stay identical (docs/data-parallel.md has the algebra).

Once the whole backward pass is done, gradients travel in a few flat buckets
(``tinygpt.backend.collectives``), last layers first; the loss and the stop
votes (Ctrl-C, SIGTERM) in one small float64 sum after them. Unlike PyTorch
DDP, the reduction does not overlap the backward pass (docs/data-parallel.md
measures what that costs).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable, Sequence
from typing import Any

from tinygpt import backend
from tinygpt.backend import collectives
from tinygpt.errors import ConfigError, DistributedError
from tinygpt.layers.module import Parameter
from tinygpt.training.distributed import World

BUCKET_BYTES = 25 * 2**20  # as PyTorch DDP: big enough for bandwidth, small enough for several


class DataParallel:
    """Shares of the global batch, the mean gradient, identical parameters: one rank's view of the run.

    ``DataParallel()`` is a world of one process, the ``Trainer``'s default: every
    batch is this process's, nothing travels, and each call below says what it
    does then (mostly nothing). ``seed`` is the run's seed (dropout masks).
    """

    def __init__(
        self,
        world: World | None = None,
        *,
        seed: int = 0,
        shared_device: bool = False,
        bucket_bytes: int = BUCKET_BYTES,
    ) -> None:
        self.world = world if world is not None else World()
        self.rank, self.size = self.world.rank, self.world.size
        self.seed = seed
        self.shared_device = shared_device
        self.bucket_bytes = bucket_bytes
        self.collectives: collectives.Collectives | None = None  # made by start(), collectively
        self.reduce_seconds = 0.0  # time spent reducing gradients, for the benchmark
        self.reduce_calls = 0
        self._agreed_stop: signal.Signals | None = None  # voted by all ranks at the last all-reduce
        self._buckets: list[list[int]] | None = None

    # Set-up --------------------------------------------------------------------------------
    def start(self, parameters: Sequence[Parameter]) -> None:
        """End of set-up on every rank: agree nobody failed, then copy rank 0's parameters everywhere."""
        self.world.agree()
        if self.size > 1 and self.collectives is None:
            self.collectives = collectives.Collectives(self.world, self.shared_device)
        self.broadcast_parameters(parameters)

    def check_global_batch(self, windows: int, what: str) -> None:
        """Refuse a global batch that leaves a rank without windows, naming the numbers."""
        if windows < self.size:
            raise ConfigError(
                f"{what} = {windows} windows per step cannot be shared by {self.size} ranks (each needs at "
                f"least one): raise --batch-size to {self.size} or more, or start fewer ranks"
            )

    @property
    def warning(self) -> str | None:
        """Why gradients take a slower path than they could (say, NCCL missing), if they do."""
        return None if self.collectives is None else self.collectives.warning

    # The batch -------------------------------------------------------------------------------
    def share(self, batches: Sequence[Any]) -> tuple[list[Any], list[float]]:
        """This rank's chunks of ``batches`` (each (B, ...), or a tuple of such), and each chunk's weight.

        A chunk weighs rows / all windows, so the weighted losses summed over
        the ranks are the mean loss over every window, however unevenly the
        windows divide. One process keeps every batch, each weighing 1 / len(batches).
        """
        if not batches:
            raise ConfigError("a step or an evaluation needs at least one batch; got none")
        if self.size == 1:
            return list(batches), [1.0 / len(batches)] * len(batches)
        total = sum(_rows(b) for b in batches)
        lo, hi = self.rank * total // self.size, (self.rank + 1) * total // self.size
        chunks, weights, offset = [], [], 0
        for batch in batches:
            rows = _rows(batch)
            first, last = max(lo, offset) - offset, min(hi, offset + rows) - offset
            if first < last:
                chunks.append(batch if (first, last) == (0, rows) else _slice(batch, first, last))
                weights.append((last - first) / total)
            offset += rows
        return chunks, weights

    def mean(self, values: Sequence[float], weights: Sequence[float]) -> float:
        """The mean over the global batch of this rank's per-chunk ``values`` (weighted as ``share`` says).

        One process: the plain mean (``share`` weighs its batches equally).
        """
        if self.size == 1:
            return sum(values) / len(values)
        local = sum(v * w for v, w in zip(values, weights, strict=True))
        return self.world.sum_floats([local])[0]

    def seed_dropout(self, step: int) -> None:
        """Dropout masks of this rank and step, from (seed, step, rank): each rank its own, and resumable.

        One process: the default generator simply runs on (a checkpoint keeps its state).
        """
        if self.size > 1:
            backend.default_generator().set_state(backend.Generator([self.seed, step, self.rank]).get_state())

    # The gradient ----------------------------------------------------------------------------
    def all_reduce_gradients(
        self, parameters: Sequence[Parameter], loss: float, stop: signal.Signals | None = None
    ) -> float:
        """Sum every parameter's gradient over the ranks, in flat buckets; returns the global loss.

        Also votes on ``stop`` (this rank's Ctrl-C or SIGTERM, if any): one
        rank's stops all of them after this step (``agreed_stop``). One
        process: the gradients and the loss are already the global ones.
        """
        if self.size == 1:
            self._agreed_stop = stop
            return loss
        assert self.collectives is not None, "call start() first"
        started = time.perf_counter()
        if self._buckets is None:
            self._buckets = _buckets(parameters, self.bucket_bytes)
        for bucket in self._buckets:
            params = [parameters[i] for i in bucket]
            missing = [p.grad_data is None for p in params]
            xp = backend.current().xp
            grads = [
                xp.zeros(p.shape, dtype=p.dtype, device=backend.current().device) if m else p.grad_data
                for p, m in zip(params, missing, strict=True)
            ]
            flat = self.collectives.all_reduce_sum(collectives.flatten(grads))
            for p, g, m in zip(
                params, collectives.unflatten(flat, [p.shape for p in params]), missing, strict=True
            ):
                p.grad_data = None if m else g
        total, interrupts, terminations = self.world.sum_floats(
            [loss, float(stop == signal.SIGINT), float(stop == signal.SIGTERM)]
        )
        if terminations:
            self._agreed_stop = signal.SIGTERM
        elif interrupts:
            self._agreed_stop = signal.SIGINT
        self.reduce_seconds += time.perf_counter() - started
        self.reduce_calls += 1
        return total

    def agreed_stop(self, local: signal.Signals | None) -> signal.Signals | None:
        """The stop every rank voted for with the last step's gradients; one process: ``local``, as it is now."""
        return local if self.size == 1 else self._agreed_stop

    # The parameters --------------------------------------------------------------------------
    def broadcast_parameters(self, parameters: Sequence[Parameter]) -> None:
        """Give every rank rank 0's parameters (they start identical; this makes it a fact)."""
        if self.size == 1:
            return
        assert self.collectives is not None, "call start() first"
        for bucket in _buckets(parameters, self.bucket_bytes):
            params = [parameters[i] for i in bucket]
            flat = self.collectives.broadcast(collectives.flatten([p.data for p in params]), 0)
            for p, data in zip(params, collectives.unflatten(flat, [p.shape for p in params]), strict=True):
                p.data = data

    def check_in_sync(self, named_parameters: Iterable[tuple[str, Parameter]], step: int) -> None:
        """Stop with a clear error if any rank's parameters differ from rank 0's (compared bit for bit)."""
        if self.size == 1:
            return
        names, params = zip(*named_parameters, strict=True)
        mine = collectives.checksums([p.data for p in params])
        every = self.world.gather_floats(mine)
        for rank, theirs in enumerate(every):
            if theirs != every[0]:
                index = next(i for i, (a, b) in enumerate(zip(theirs, every[0], strict=True)) if a != b)
                raise DistributedError(
                    f"step {step}: the parameters of rank {rank} differ from rank 0's "
                    f"(first {names[index // 2]}); the ranks no longer compute the same model. Resume "
                    "from the last checkpoint with --resume; if it happens again, report it as a bug"
                )


def _rows(batch: Any) -> int:
    """Windows (rows) in a batch: its first axis, or its first element's for an (inputs, targets) tuple."""
    return int((batch[0] if isinstance(batch, tuple) else batch).shape[0])


def _slice(batch: Any, first: int, last: int) -> Any:
    """Rows [first, last) of a batch, or of every element of a batch tuple."""
    if isinstance(batch, tuple):
        return tuple(part[first:last, ...] for part in batch)
    return batch[first:last, ...]


def _buckets(parameters: Sequence[Parameter], limit: int) -> list[list[int]]:
    """Parameter indices in buckets of at most ``limit`` bytes and one dtype, last parameters first."""
    buckets: list[list[int]] = []
    size, dtype = 0, None
    for i in reversed(range(len(parameters))):
        p = parameters[i]
        nbytes = p.size * backend.current().xp.finfo(p.dtype).bits // 8
        if not buckets or size + nbytes > limit or p.dtype != dtype:
            buckets.append([])
            size, dtype = 0, p.dtype
        buckets[-1].append(i)
        size += nbytes
    return buckets
