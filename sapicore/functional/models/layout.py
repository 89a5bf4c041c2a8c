"""Weight layouts: how a projection stores one weight per synapse, and how rules address them.

* `DenseLayout`: ``weights[i, j]`` of shape ``(n_pre, n_post)``, zero where no synapse exists
  (``mask``);
* `SparseLayout`: one row per source neuron, ``weights[i, k]`` of shape ``(n_pre + 1, max_out)``,
  whose synapse targets neuron ``targets[i, k]`` (or several consecutive rows per source, narrower
  than its out-degree); unused slots (and the extra last row) point at the padding index ``n_post``
  and hold weight 0.

Plasticity rules are written once for both: ``layout.pre(x)`` and ``layout.post(y)`` give
per-neuron values of the source and target populations in the shape of the weights, and
``layout.keep(w)`` zeroes the slots that are not synapses.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Layout", "DenseLayout", "SparseLayout"]


class Layout:
    """Addressing helpers for the weights of one projection (built inside a step; not a pytree)."""

    def __init__(self, mask: torch.Tensor | None, n_post: int):
        self.mask, self.n_post = mask, n_post  # mask None: every slot is a synapse

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """Source values ``x`` (n_pre,) broadcast to the weights' shape."""
        raise NotImplementedError

    def post(self, y: torch.Tensor) -> torch.Tensor:
        """Target values ``y`` (n_post,) in the weights' shape."""
        raise NotImplementedError

    def incoming_sum(self, w: torch.Tensor) -> torch.Tensor:
        """Sum of the weights onto each target neuron, shape (n_post,)."""
        raise NotImplementedError

    def keep(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` with every slot that is not a synapse set to 0."""
        if self.mask is None:
            return w
        return torch.where(self.mask, w, torch.zeros((), dtype=w.dtype, device=w.device))

    def clip(self, w: torch.Tensor, low: Any, high: Any) -> torch.Tensor:
        """Synaptic weights clipped to ``[low, high]``; non-synapse slots stay 0."""
        return self.keep(torch.clamp(w, min=low, max=high))


class DenseLayout(Layout):
    """A ``(n_pre, n_post)`` weight matrix."""

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, None]

    def post(self, y: torch.Tensor) -> torch.Tensor:
        return y[None, :]

    def incoming_sum(self, w: torch.Tensor) -> torch.Tensor:
        return w.sum(0)


class SparseLayout(Layout):
    """Padded rows of outgoing synapses, ``targets[i, k]`` naming each one's target neuron; row ``i``
    holds source ``i``'s synapses, or, with ``row_sources``, those of source ``row_sources[i]``
    (``n_pre`` for the padding row)."""

    def __init__(self, mask: torch.Tensor, targets: torch.Tensor, n_post: int, row_sources: torch.Tensor | None = None):
        super().__init__(mask, n_post)
        self.targets, self.row_sources = targets, row_sources

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([x, x.new_zeros(1)])
        return (padded if self.row_sources is None else padded.index_select(0, self.row_sources))[:, None]

    def post(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([y, y.new_zeros(1)])[self.targets]

    def incoming_sum(self, w: torch.Tensor) -> torch.Tensor:
        sums = w.new_zeros(self.n_post + 1).index_add(0, self.targets.reshape(-1), w.reshape(-1))
        return sums[: self.n_post]
