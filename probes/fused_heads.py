"""The readout heads' forward and backward over Gaussians in cache-sized chunks (CPU speed).

Evaluating ``relu(x W1^T + b1)`` for every head and every Gaussian materialises an (N, heads*256) hidden
activation (38 MB for 9k Gaussians in mode G) that autograd then reads and writes about ten times per step;
on a CPU that memory traffic, not arithmetic, dominates a training step. ``fused_heads`` computes the same
function chunk by chunk and recomputes each chunk's hidden activation in the backward pass (activation
checkpointing), so every intermediate stays in cache. The result equals the plain composition up to float
rounding; gradients are accumulated in a fixed chunk order, so runs stay bit-reproducible.

Two input forms (see ``probes.features.GaussianFeatures``):

* ``index is None``: ``src`` are per-Gaussian features (N, D); the first layer is applied per chunk;
* otherwise ``src`` is the first layer already applied to the T tokens, (T, heads*hidden), and each Gaussian
  interpolates four of its rows with ``weight`` (the token-first path): the gradient flows back to ``src``.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

CHUNK = 1024


def _pre(x, index, weight, a, c, s, e):
    """First-layer output of one head for Gaussians s:e: ``x W1^T + b1`` (dense, a=W1, c=b1) or the
    interpolation of the head's token table ``a`` (token-first)."""
    if index is None:
        return F.linear(x[s:e], a, c)
    return F.embedding_bag(index[s:e], a, per_sample_weights=weight[s:e], mode="sum")


def transposed_chunks(index: torch.Tensor, weight: torch.Tensor, num_tokens: int, chunk: int) -> list[torch.Tensor]:
    """The interpolation's transpose, (T x chunk) CSR matrices, one per chunk of Gaussians: the backward of
    the token-first path is then one sparse product per chunk and head (several times faster than
    scattering the taps with ``index_add_``)."""
    out = []
    with warnings.catch_warnings():  # torch flags sparse CSR as beta
        warnings.simplefilter("ignore", UserWarning)
        for s in range(0, index.shape[0], chunk):
            idx, w = index[s:s + chunk], weight[s:s + chunk]
            cols = torch.arange(idx.shape[0]).repeat_interleave(idx.shape[1])
            coo = torch.sparse_coo_tensor(torch.stack([idx.reshape(-1), cols]), w.reshape(-1),
                                          (num_tokens, idx.shape[0]), check_invariants=False)
            out.append(coo.coalesce().to_sparse_csr())
    return out


class _FusedHeads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, index, weight, chunk, interp_t, *params):
        heads = [params[i:i + 4] for i in range(0, len(params), 4)]  # (a, c, w2, b2) per head
        n = x.shape[0] if index is None else index.shape[0]
        outs = [params[2].new_empty(n, w2.shape[0]) for _, _, w2, _ in heads]
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            for (a, c, w2, b2), out in zip(heads, outs):
                h = _pre(x, index, weight, a, c, s, e).clamp_min_(0)
                torch.addmm(b2, h, w2.t(), out=out[s:e])
        ctx.save_for_backward(x, index, weight, *params)
        ctx.chunk, ctx.n, ctx.interp_t = chunk, n, interp_t
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grad_outs):
        x, index, weight, *params = ctx.saved_tensors
        heads = [params[i:i + 4] for i in range(0, len(params), 4)]
        need = ctx.needs_input_grad[5:]
        grads = [torch.zeros_like(p) if (p is not None and need[i]) else None for i, p in enumerate(params)]
        for ci, s in enumerate(range(0, ctx.n, ctx.chunk)):
            e = min(s + ctx.chunk, ctx.n)
            for k, ((a, c, w2, b2), g) in enumerate(zip(heads, grad_outs)):
                if g is None:
                    continue
                ga, gc, gw2, gb2 = grads[4 * k:4 * k + 4]
                gk = g[s:e]
                h = _pre(x, index, weight, a, c, s, e).clamp_min_(0)
                if gw2 is not None:
                    gw2.addmm_(gk.t(), h)
                if gb2 is not None:
                    gb2.add_(gk.sum(0))
                g_pre = torch.ops.aten.threshold_backward(gk @ w2, h, 0)
                if index is not None:
                    if ga is not None:
                        ga.add_(torch.sparse.mm(ctx.interp_t[ci], g_pre))
                else:
                    if ga is not None:
                        ga.addmm_(g_pre.t(), x[s:e])
                    if gc is not None:
                        gc.add_(g_pre.sum(0))
        return (None, None, None, None, None, *grads)


def fused_heads(x: Optional[torch.Tensor], index: Optional[torch.Tensor], weight: Optional[torch.Tensor],
                heads: Sequence[tuple], chunk: int = CHUNK,
                interp_t: Optional[list[torch.Tensor]] = None) -> tuple[torch.Tensor, ...]:
    """Per-head outputs ``relu(pre_k) @ w2_k.T + b2_k``.

    ``heads`` holds one (a, c, w2, b2) per head. Dense form (``index is None``): ``pre_k = x @ a.T + c``
    with a = W1_k, c = b1_k. Token-first form: ``a`` is the head's first layer applied to the tokens,
    (T, hidden), c is None, and ``pre_k`` is the ``weight``-ed sum of the ``index`` rows of ``a``;
    ``interp_t`` may pass ``transposed_chunks(index, weight, T, chunk)`` computed once for many calls.
    """
    flat = [t for head in heads for t in head]
    if index is not None and interp_t is None:
        interp_t = transposed_chunks(index, weight, heads[0][0].shape[0], chunk)
    return _FusedHeads.apply(x, index, weight, chunk, interp_t, *flat)
