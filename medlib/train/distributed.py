"""Several processes: who am I, which rows are mine, gathering what the others computed.

The engine runs unchanged with one process (every helper here is then the identity). Under ``torchrun``
(``medlib.train.launch``) each rank takes a contiguous, disjoint chunk of every global batch of the same
seeded permutation (the union is the single-process batch), and validation is sharded the same way and
gathered, so every rank sees the whole validation split's outputs. Built on ``torch.distributed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place in the process group (``World()`` when torch.distributed is not initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    import os
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def rows(n: int, w: World) -> slice:
    """This rank's contiguous chunk of ``n`` rows (sizes differ by at most one; rank order = row order)."""
    base, extra = divmod(n, w.size)
    start = w.rank * base + min(w.rank, extra)
    return slice(start, start + base + (1 if w.rank < extra else 0))


def barrier(w: World) -> None:
    if w.distributed:
        dist.barrier()


def sum_all(x: float, w: World) -> float:
    """Sum of ``x`` over ranks (a float64 all-reduce)."""
    if not w.distributed:
        return x
    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def gather_rows(local: torch.Tensor, n: int, w: World) -> torch.Tensor:
    """The (n, ...) tensor whose :func:`rows` chunks the ranks hold (no gradient), in row order."""
    if not w.distributed:
        return local
    sizes = [rows(n, World(r, w.size)).stop - rows(n, World(r, w.size)).start for r in range(w.size)]
    # gloo/nccl all_gather needs equal shapes: pad each chunk to the largest, then cut
    pad = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=local.device)
    pad[:len(local)] = local
    out = [torch.empty_like(pad) for _ in range(w.size)]
    dist.all_gather(out, pad.contiguous())
    return torch.cat([o[:s] for o, s in zip(out, sizes)])
