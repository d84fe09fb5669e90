"""Speed of the objectives, forward + backward on CPU, side by side with a baseline.

Run (opt-in; the test suite skips benchmarks), see benchmarks/README.md:

    PMRL_BENCH_THREADS=1 python -m pytest benchmarks/test_objectives_speed.py --benchmark-only \
        --benchmark-timer=time.process_time --benchmark-autosave

(drop ``PMRL_BENCH_THREADS=1`` and the timer for wall-clock with torch's own thread count on a quiet machine)

* group ``pmrl B=256 D=512 k=4``: the harness's ``pmrl`` (k×k Gram + eigh) against PMRL as the official code
  computes it, ``torch.linalg.svd(Z, full_matrices=True)`` (the baseline), and the reduced SVD. Target: >= 50×.
  Before timing, the values are checked equal within 1e-5 (and the gradients close).
* group ``gram vs infonce B=256 D=512 k=3``: ``gram`` (default float64 assembly, and float32) against
  ``infonce`` (the baseline) at the same shape. Target: within 3×.
* group ``newer vs infonce B=256 D=512 k=3``: ``triangle`` (float64 assembly, the default, and float32),
  ``centrobind``, ``confu`` (its fusion MLPs at D=512, hidden 512) and the composite ``infonce+0.1*pmrl``
  against ``infonce`` (the baseline), each a fresh objective of default parameters.

The session prints each ratio (benchmarks/conftest.py). ``PMRL_BENCH_THREADS=N`` sets torch's thread count
for every benchmark (default 1, the steadiest ratios on a machine shared with other jobs).
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

import pmrl_bench

B, D = 256, 512
SEED = 0


def embeddings(k: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(SEED)
    return {f"m{i}": F.normalize(torch.randn(B, D, generator=generator), dim=-1).requires_grad_() for i in range(k)}


def official_pmrl(emb: dict[str, torch.Tensor], tau1: float = 0.05, tau2: float = 0.1, full_matrices: bool = True,
                  sign_fix: bool = False) -> torch.Tensor:
    """PMRL's intra + inter as the official code computes them (docs/objectives.md#pmrl), float32."""
    Z = torch.stack(list(emb.values()), dim=-1)
    U, S, _ = torch.linalg.svd(Z, full_matrices=full_matrices)
    intra = F.cross_entropy(S / tau1, torch.zeros(len(S), dtype=torch.long))
    u = U[:, :, 0]
    if sign_fix:  # only to compare values: the SVD's sign is arbitrary, the harness's sign_fix rule is not
        u = u * torch.where((u.unsqueeze(-1) * Z).sum((1, 2)) < 0, -1.0, 1.0)[:, None]
    inter = F.cross_entropy(u @ u.T / tau2, torch.arange(len(u)))
    return intra + inter


def forward_backward(loss_fn, emb):
    def step():
        for e in emb.values():
            e.grad = None
        loss = loss_fn(emb)
        loss.backward()
        return loss.detach()

    return step


@pytest.fixture(scope="module")
def pmrl_values_agree() -> float:
    """Before timing: the harness's pmrl equals the official full-SVD loss within 1e-5, gradients close.

    Both use the sign-fixed leading vector: SVD and eigh signs are arbitrary (docs/objectives.md, pitfall P2)."""
    emb = embeddings(4)
    ours = pmrl_bench.create_objective("pmrl", sign_fix=True)(emb).loss
    official = official_pmrl(emb, sign_fix=True)
    difference = abs(ours.item() - official.item())
    assert difference <= 1e-5
    g_ours = torch.autograd.grad(ours, list(emb.values()))
    g_official = torch.autograd.grad(official, list(emb.values()))
    for a, b in zip(g_ours, g_official):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
    return difference


def harness_loss(name: str, **params):
    objective = pmrl_bench.create_objective(name, **params)
    return lambda emb: objective(emb).loss


# case -> (loss function factory, rounds); the official full SVD takes ~100x longer, so fewer rounds
PMRL_CASES = {
    "official svd(full_matrices=True)": (lambda: official_pmrl, 3),
    "svd(full_matrices=False)": (lambda: functools.partial(official_pmrl, full_matrices=False), 10),
    "pmrl (gram + eigh)": (lambda: harness_loss("pmrl"), 30),
}


@pytest.mark.parametrize("case", list(PMRL_CASES))
def test_pmrl_forward_backward(benchmark, case, threads, pmrl_values_agree):
    make, rounds = PMRL_CASES[case]
    benchmark.group = "pmrl B=256 D=512 k=4"
    benchmark.extra_info.update(
        role="baseline" if case.startswith("official") else "candidate", threads=threads,
        loss_difference_vs_official=pmrl_values_agree,
    )
    loss = benchmark.pedantic(forward_backward(make(), embeddings(4)), rounds=rounds, warmup_rounds=1)
    assert torch.isfinite(loss)


CONTRASTIVE_CASES = {  # case -> (objective, params, is the baseline)
    "infonce": ("infonce", {}, True),
    "gram (float64)": ("gram", {}, False),
    "gram (float32)": ("gram", {"precision": "float32"}, False),
}


@pytest.mark.parametrize("case", list(CONTRASTIVE_CASES))
def test_gram_vs_infonce_forward_backward(benchmark, case, threads):
    name, params, baseline = CONTRASTIVE_CASES[case]
    benchmark.group = "gram vs infonce B=256 D=512 k=3"
    benchmark.extra_info.update(role="baseline" if baseline else "candidate", threads=threads)
    loss = benchmark.pedantic(forward_backward(harness_loss(name, **params), embeddings(3)), rounds=30, warmup_rounds=2)
    assert torch.isfinite(loss)


NEWER_CASES = {  # case -> (objective, params, is the baseline)
    "infonce": ("infonce", {}, True),
    "triangle (float64)": ("triangle", {}, False),
    "triangle (float32)": ("triangle", {"precision": "float32"}, False),
    "centrobind": ("centrobind", {}, False),
    "confu": ("confu", {"dim": D}, False),
    "infonce+0.1*pmrl": ("infonce+0.1*pmrl", {}, False),
}


@pytest.mark.parametrize("case", list(NEWER_CASES))
def test_newer_vs_infonce_forward_backward(benchmark, case, threads):
    name, params, baseline = NEWER_CASES[case]
    benchmark.group = "newer vs infonce B=256 D=512 k=3"
    benchmark.extra_info.update(role="baseline" if baseline else "candidate", threads=threads)
    torch.manual_seed(SEED)  # confu's fusion heads are initialised from the global generator
    loss = benchmark.pedantic(forward_backward(harness_loss(name, **params), embeddings(3)), rounds=30, warmup_rounds=2)
    assert torch.isfinite(loss)
