"""Blocked retrieval ranks against one dense similarity matrix, and the blocked version's memory at 100 000 items.

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_retrieval_speed.py --benchmark-only --benchmark-group-by=group \
        --benchmark-timer=time.process_time

torch runs on one thread (stable on a shared machine; process time then equals compute time).

* group ``retrieval-4096``: the same ranks three ways at N = 4096 (the dense matrix is 64 MiB, so all fit):
  ``dense`` (one N x N matrix), ``blocked`` (library defaults: 1024 x 1024 blocks) and ``query-chunks``
  (1024 x 4096 blocks: queries chunked, the whole gallery per chunk, the earlier scheme). Target: within 1.5x.
* group ``native-both-ways``: an objective's native retrieval (``volume``, three modalities, 400 instances as in
  ``mfeat``'s test split) with its ``native_score_symmetric`` declaration, against the baseline that scores each
  direction and its reverse separately. Same ranks (asserted); the ratio is the time saved.
* group ``retrieval-100k``: 100 000 x 100 000 pairs (a dense float32 matrix would need 40 GB), run in a fresh
  process so its peak resident memory (ru_maxrss) is clean; ``extra_info`` holds the peak growth over the
  embeddings themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import pmrl_bench
from pmrl_bench.evaluation.native import native_ranks
from pmrl_bench.evaluation.retrieval import cosine_scores, retrieval_ranks

N, D = 4096, 64


def dense_ranks(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    scores = cosine_scores(queries, gallery)
    return (scores >= scores.diagonal().unsqueeze(1)).sum(dim=1)



@pytest.fixture(scope="module")
def embeddings():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(N, D, generator=g), dim=-1)
    return q, torch.nn.functional.normalize(q + 0.5 * torch.randn(N, D, generator=g), dim=-1)


@pytest.mark.benchmark(group="retrieval-4096")
@pytest.mark.parametrize("method", ["dense", "blocked", "query-chunks"])
def test_blocked_vs_dense(benchmark, embeddings, method):
    q, g = embeddings
    fn = {
        "dense": lambda: dense_ranks(q, g),
        "blocked": lambda: retrieval_ranks(q, g),
        "query-chunks": lambda: retrieval_ranks(q, g, chunk_size=1024, gallery_chunk_size=N),
    }[method]
    benchmark.extra_info.update(n=N, dim=D, threads=torch.get_num_threads())
    ranks = benchmark.pedantic(fn, rounds=10, warmup_rounds=2, iterations=1)
    assert torch.equal(ranks, dense_ranks(q, g))


class TwoPasses:
    """The objective's native score without its symmetry declaration: every direction scored on its own."""

    native_score_symmetric = False

    def __init__(self, objective) -> None:
        self.native_score, self.native_directions = objective.native_score, objective.native_directions


@pytest.mark.benchmark(group="native-both-ways")
@pytest.mark.parametrize("scoring", ["two passes", "one matrix"])
def test_native_score_both_ways(benchmark, scoring):
    g = torch.Generator().manual_seed(0)
    emb = {m: torch.nn.functional.normalize(torch.randn(400, D, generator=g), dim=-1) for m in ("a", "b", "c")}
    volume = pmrl_bench.create_objective("volume")
    objective = volume if scoring == "one matrix" else TwoPasses(volume)
    benchmark.extra_info.update(n=400, dim=D, threads=torch.get_num_threads())
    if scoring == "two passes":
        benchmark.extra_info["role"] = "baseline"
    ranks = benchmark.pedantic(lambda: native_ranks(objective, emb), rounds=10, warmup_rounds=2, iterations=1)
    reference = native_ranks(TwoPasses(volume), emb)
    assert list(ranks) == list(reference) and all(torch.equal(ranks[k], reference[k]) for k in ranks)


_CHILD = r"""
import json, resource, sys, time
import torch
from pmrl_bench.evaluation.retrieval import retrieval_ranks
n, d = int(sys.argv[1]), int(sys.argv[2])
g = torch.Generator().manual_seed(0)
q = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
k = torch.nn.functional.normalize(q + 0.5 * torch.randn(n, d, generator=g), dim=-1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu_start = time.perf_counter(), time.process_time()
ranks = retrieval_ranks(q, k)
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_growth_mib": (after - before) / 1024,
                  "peak_rss_mib": after / 1024, "r_at_1": float((ranks <= 1).double().mean())}))
"""


@pytest.mark.benchmark(group="retrieval-100k")
def test_blocked_memory_at_100k(benchmark):
    n = 100_000

    def run():
        out = subprocess.run([sys.executable, "-c", _CHILD, str(n), str(D)], capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        return json.loads(out.stdout)

    stats = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(n=n, dim=D, dense_matrix_mib=n * n * 4 / 2**20, **stats)
    print(f"\n100k blocked retrieval: {stats}")
    assert stats["peak_growth_mib"] < 512  # bounded by one block, far from the 38 147 MiB dense matrix
