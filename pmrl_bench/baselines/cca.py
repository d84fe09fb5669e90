"""Linear CCA (scikit-learn ``CCA``) as a retrieval reference for multi-view tasks such as ``mfeat``.

For every pair of modalities a CCA is fitted on the train split; test instances of both modalities are mapped
to their canonical variates, L2-normalised, and retrieved by cosine in both directions with the same ranks
and metrics as the objectives (``evaluation.retrieval``). The number of canonical components is chosen per pair
on a stratified validation part of the train split (never on the test split), then refitted on all of train.

    python -m pmrl_bench.baselines.cca --task mfeat             # default triple pix, fou, zer
    python -m pmrl_bench.baselines.cca --task mfeat --set views=pix,kar,fac --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.cross_decomposition import CCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from pmrl_bench.console import say, write
from pmrl_bench.components import TaskData
from pmrl_bench.errors import PmrlBenchError, UsageError
from pmrl_bench.evaluation.retrieval import recall_metrics, retrieval_ranks

COMPONENT_GRID = (2, 4, 8, 16, 32)
VALIDATION_SHARE = 0.2


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def fit_cca(train_a: np.ndarray, train_b: np.ndarray, n_components: int) -> CCA:
    with warnings.catch_warnings():  # NIPALS may stop at max_iter on weak components; the variates are still usable
        warnings.simplefilter("ignore", ConvergenceWarning)
        return CCA(n_components=n_components, max_iter=500).fit(_flat(train_a), _flat(train_b))


def cca_variates(cca: CCA, test_a: np.ndarray, test_b: np.ndarray,
                 n_components: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm canonical variates of test rows of both views: the first ``n_components`` (default: all)."""
    za, zb = cca.transform(_flat(test_a), _flat(test_b))
    return tuple(
        torch.nn.functional.normalize(torch.as_tensor(z[:, :n_components], dtype=torch.float32), dim=-1)
        for z in (za, zb)
    )


def _mean_r1(za: torch.Tensor, zb: torch.Tensor) -> float:
    return 0.5 * sum(recall_metrics(retrieval_ranks(q, g))["R@1"] for q, g in ((za, zb), (zb, za)))


def choose_components(a: np.ndarray, b: np.ndarray, labels: np.ndarray | None, seed: int = 0) -> int:
    """The grid value with the best validation R@1 (both directions) on a held-out share of the train rows.

    NIPALS finds components one after another, so the first k components of one fit with the largest grid
    value are those of a k-component fit: one fit scores the whole grid.
    """
    limit = min(_flat(a).shape[1], _flat(b).shape[1], int(len(a) * (1 - VALIDATION_SHARE)) - 1)
    grid = [k for k in COMPONENT_GRID if k <= limit] or [max(1, limit)]
    fit, val = train_test_split(np.arange(len(a)), test_size=VALIDATION_SHARE, random_state=seed, stratify=labels)
    cca = fit_cca(a[fit], b[fit], max(grid))
    scores = {k: _mean_r1(*cca_variates(cca, a[val], b[val], k)) for k in grid}
    return max(scores, key=lambda k: (scores[k], -k))


def cca_retrieval(data: TaskData, n_components: int | None = None, seed: int = 0) -> dict[str, dict]:
    """``{"retrieval": {"a->b": {R@1, R@5, R@10, MdR}}, "components": {"a,b": k}}`` for every pair of modalities."""
    names = [m.name for m in data.modalities]
    retrieval: dict[str, dict[str, float]] = {}
    components: dict[str, int] = {}
    for a, b in itertools.combinations(names, 2):
        train_a, train_b = data.train.inputs[a], data.train.inputs[b]
        k = n_components or choose_components(train_a, train_b, data.train.labels, seed)
        components[f"{a},{b}"] = k
        za, zb = cca_variates(fit_cca(train_a, train_b, k), data.test.inputs[a], data.test.inputs[b])
        retrieval[f"{a}->{b}"] = recall_metrics(retrieval_ranks(za, zb))
        retrieval[f"{b}->{a}"] = recall_metrics(retrieval_ranks(zb, za))
    return {"retrieval": retrieval, "components": components}


def mean_metric(retrieval: dict[str, dict[str, float]], metric: str = "R@1") -> float:
    return float(np.mean([scores[metric] for scores in retrieval.values()]))


def _markdown(task: str, result: dict[str, dict]) -> str:
    import pandas as pd

    retrieval = result["retrieval"]
    rows = [[direction.replace("->", "→"), f"{100 * s['R@1']:.1f}", f"{100 * s['R@5']:.1f}",
             f"{100 * s['R@10']:.1f}", f"{s['MdR']:.1f}"] for direction, s in retrieval.items()]
    rows.append(["**mean**", *(f"{100 * mean_metric(retrieval, m):.1f}" for m in ("R@1", "R@5", "R@10")),
                 f"{mean_metric(retrieval, 'MdR'):.1f}"])
    table = pd.DataFrame(rows, columns=["direction", "R@1 %", "R@5 %", "R@10 %", "MdR"])
    chosen = ", ".join(f"{pair}: {k}" for pair, k in result["components"].items())
    return f"Linear CCA on `{task}` (components per pair: {chosen})\n\n{table.to_markdown(index=False)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pmrl_bench.baselines.cca", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mfeat", help="a registered task (default: mfeat)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a task parameter (repeatable)")
    parser.add_argument("--components", type=int, default=None,
                        help="fixed number of components (default: chosen on validation)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    from pmrl_bench.params import coerce
    from pmrl_bench.plugins import get_registry
    from pmrl_bench.runner.checks import check_task_data

    try:
        component = get_registry().get("task", args.task)
        raw = {}
        for option in args.set:
            key, sep, value = option.partition("=")
            if not sep:
                raise UsageError(f"--set {option!r} is not KEY=VALUE (e.g. views=pix,kar,fac)")
            raw[key] = coerce(component, key, value)
        params = component.resolve_params(raw)
        data = component.create(**params).load()
        check_task_data(args.task, data)
        if args.components is not None and args.components < 1:
            raise UsageError(f"--components must be >= 1, got {args.components}")
        result = cca_retrieval(data, args.components)
    except PmrlBenchError as exc:
        say(f"error: {exc}")
        return 2
    write(_markdown(args.task, result))
    if args.json:
        args.json.write_text(
            json.dumps({"task": args.task, "task_params": params, **result}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
