"""Linear CCA (scikit-learn ``CCA``) as a retrieval reference for multi-view tasks such as ``mfeat``.

The data is the runner's: the task loaded with its parameters and given the same validation split
(:func:`pmrl_bench.splits.with_validation`), so the recorded data fingerprint is the one in the task's result files.
For every pair of modalities a CCA is fitted on the train split; test instances of both modalities are mapped
to their canonical variates, L2-normalised, and retrieved by cosine in both directions with the same ranks
and metrics as the objectives (``evaluation.retrieval``). The number of canonical components is chosen per pair
on the validation split (never on the test split), then fitted on train.

    python -m pmrl_bench.baselines.cca --task mfeat                       # prints the table
    python -m pmrl_bench.baselines.cca --task mfeat --results results     # writes results/_baselines/mfeat/cca.json
    python -m pmrl_bench.baselines.cca --task mfeat --set views=pix,kar,fac --json out.json

The file under ``--results`` is a :class:`~pmrl_bench.baselines.record.BaselineResult`: the leaderboard shows it as
a reference row of the cosine retrieval table on the task's page when its data fingerprint matches the results'.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cross_decomposition import CCA
from sklearn.exceptions import ConvergenceWarning

from pmrl_bench.baselines.record import BaselineResult, write_baseline
from pmrl_bench.console import say, write
from pmrl_bench.components import TaskData
from pmrl_bench.errors import PmrlBenchError, UsageError
from pmrl_bench.evaluation.retrieval import recall_metrics, retrieval_ranks

COMPONENT_GRID = (2, 4, 8, 16, 32)
# The row label on the leaderboard pages.
LABEL = "linear CCA (no training)"


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


def choose_components(train_a: np.ndarray, train_b: np.ndarray, val_a: np.ndarray, val_b: np.ndarray) -> int:
    """The grid value with the best validation R@1 (both directions), fitted on train.

    NIPALS finds components one after another, so the first k components of one fit with the largest grid
    value are those of a k-component fit: one fit scores the whole grid.
    """
    limit = min(_flat(train_a).shape[1], _flat(train_b).shape[1], len(train_a) - 1)
    grid = [k for k in COMPONENT_GRID if k <= limit] or [max(1, limit)]
    cca = fit_cca(train_a, train_b, max(grid))
    scores = {k: _mean_r1(*cca_variates(cca, val_a, val_b, k)) for k in grid}
    return max(scores, key=lambda k: (scores[k], -k))


def cca_retrieval(data: TaskData, n_components: int | None = None) -> dict[str, dict]:
    """``{"retrieval": {"a->b": {R@1, R@5, R@10, MdR}}, "components": {"a,b": k}}`` for every pair of modalities.

    ``data`` must have a validation split (:func:`pmrl_bench.splits.with_validation`) unless ``n_components`` is
    given: the components are chosen there."""
    names = [m.name for m in data.modalities]
    retrieval: dict[str, dict[str, float]] = {}
    components: dict[str, int] = {}
    for a, b in itertools.combinations(names, 2):
        train_a, train_b = data.train.inputs[a], data.train.inputs[b]
        if n_components is None and data.validation is None:
            raise UsageError("linear CCA chooses its components on a validation split: the data has none")
        k = n_components or choose_components(train_a, train_b, data.validation.inputs[a], data.validation.inputs[b])
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


def load_task_data(task: str, settings: Sequence[str]) -> tuple[dict[str, Any], TaskData]:
    """The task's resolved parameters and its data as the runner sees it: checked, with the runner's validation
    split (:func:`pmrl_bench.splits.with_validation`), so its fingerprint matches the task's result files."""
    from pmrl_bench.params import coerce
    from pmrl_bench.plugins import get_registry
    from pmrl_bench.runner.checks import check_task_data
    from pmrl_bench.runner.sweep_plan import load_task
    from pmrl_bench.splits import DEFAULT_VAL_SIZE, with_validation

    registry = get_registry()
    component = registry.get("task", task)
    raw = {}
    for option in settings:
        key, sep, value = option.partition("=")
        if not sep:
            raise UsageError(f"--set {option!r} is not KEY=VALUE (e.g. views=pix,kar,fac)")
        raw[key] = coerce(component, key, value)
    params = component.resolve_params(raw)
    data = load_task(registry, task, params)
    check_task_data(task, data)
    return params, with_validation(data, DEFAULT_VAL_SIZE, seed=0)


def baseline_result(task: str, params: dict[str, Any], data: TaskData, result: dict[str, dict],
                    command: str) -> BaselineResult:
    """The versioned baseline file for ``result`` (what :func:`cca_retrieval` returned) on ``data``."""
    from datetime import datetime, timezone

    from pmrl_bench.results.schema import json_params
    from pmrl_bench.runner.executor import collect_versions
    from pmrl_bench.runner.fingerprint import data_fingerprint
    from pmrl_bench.splits import split_sizes

    return BaselineResult(
        baseline="cca", label=LABEL, task=task, task_params=json_params(params),
        data_fingerprint=data_fingerprint(data), splits=split_sizes(data), versions=collect_versions(),
        retrieval=result["retrieval"], settings={"components": result["components"]},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=command,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pmrl_bench.baselines.cca", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mfeat", help="a registered task (default: mfeat)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a task parameter (repeatable)")
    parser.add_argument("--components", type=int, default=None,
                        help="fixed number of components (default: chosen on validation)")
    parser.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="write the baseline file DIR/_baselines/TASK/cca.json (the leaderboard reads it)")
    parser.add_argument("--json", type=Path, default=None, help="also write the plain result as JSON here")
    args = parser.parse_args(argv)
    try:
        if args.components is not None and args.components < 1:
            raise UsageError(f"--components must be >= 1, got {args.components}")
        params, data = load_task_data(args.task, args.set)
        result = cca_retrieval(data, args.components)
    except PmrlBenchError as exc:
        say(f"error: {exc}")
        return 2
    write(_markdown(args.task, result))
    if args.json:
        args.json.write_text(
            json.dumps({"task": args.task, "task_params": params, **result}, indent=2, default=str) + "\n")
    if args.results is not None:
        command = " ".join(["python -m pmrl_bench.baselines.cca", *(argv if argv is not None else sys.argv[1:])])
        try:
            path = write_baseline(args.results, baseline_result(args.task, params, data, result, command))
        except OSError as exc:
            say(f"error: cannot write the baseline file under {args.results}/: {exc.strerror or exc}")
            return 1
        write(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
