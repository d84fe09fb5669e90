"""From result files to what the leaderboards need: row labels, retrieval views, per-query ranks, scalars, curves.

Nothing here knows a particular objective or task: retrieval views are found by shape (any ``metrics`` entry
mapping ``"<query>-><gallery>"`` to scores with ``R@1``), stability scalars by walking the ``stability`` block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pmrl_bench.evaluation.per_query import PER_QUERY_KEY, decode_ranks
from pmrl_bench.results import RunResult
from pmrl_bench.results.schema import is_retrieval_view

MAIN_VIEW = "retrieval"
CURVES = "curves"


@dataclass
class Run:
    """One result, flattened for the tables."""

    label: str
    seed: int
    status: str
    result: RunResult
    views: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # view -> direction -> metric
    ranks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # view -> direction -> per-query ranks
    classification: dict[str, float] = field(default_factory=dict)
    stability: dict[str, float] = field(default_factory=dict)  # "monitor/key[/sub]" -> scalar


def retrieval_views(metrics: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Every retrieval-shaped entry of a result's metrics: ``retrieval`` and any other view a plugin added."""
    views = {}
    for name, value in metrics.items():
        if name != PER_QUERY_KEY and is_retrieval_view(value):  # the schema checked these scores are numbers
            views[name] = {d: {k: float(v) for k, v in s.items() if v is not None} for d, s in value.items()}
    return views


def _per_query_ranks(metrics: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    stored = metrics.get(PER_QUERY_KEY)
    if not isinstance(stored, Mapping):
        return {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for view, directions in stored.items():
        if isinstance(directions, Mapping):
            try:
                out[view] = {d: decode_ranks(text) for d, text in directions.items() if isinstance(text, str)}
            except ValueError:  # a malformed rank string: fall back to the seed bootstrap for this view
                continue
    return out


def stability_scalars(stability: Mapping[str, Any]) -> dict[str, float]:
    """``{"monitor/key": value, "monitor/key/sub": value}`` for every scalar, skipping curves and lists."""
    out = {}
    for monitor, block in stability.items():
        if not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            if key == CURVES:
                continue
            if isinstance(value, bool):
                value = float(value)
            if isinstance(value, (int, float)):
                out[f"{monitor}/{key}"] = float(value)
            elif isinstance(value, Mapping):
                for sub, v in value.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        out[f"{monitor}/{key}/{sub}"] = float(v)
    return out


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _varying(flat: Sequence[dict[str, Any]]) -> list[str]:
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=repr) for f in flat}) > 1]


def config_labels(results: Sequence[RunResult]) -> dict[tuple[str, str, str], str]:
    """Row label per (task, objective, config_id): the objective name plus the parameters that tell its configs apart.

    Objective and budget parameters that vary across the whole sweep come first, so one configuration keeps
    one label on every task; encoder or task parameters are added only where a task still has two
    configurations of one objective with the same label.
    """
    by_objective: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_objective.setdefault(r.objective, {})[json.dumps(_global_part(r), sort_keys=True, default=repr)] = _global_part(r)
    global_keys = {obj: _varying([_flatten(p) for p in parts.values()]) for obj, parts in by_objective.items()}

    labels: dict[tuple[str, str, str], str] = {}
    groups: dict[tuple[str, str], dict[str, RunResult]] = {}
    for r in results:
        flat = _flatten(_global_part(r))
        extra = ", ".join(f"{k}={flat.get(k)}" for k in global_keys[r.objective])
        base = f"{r.objective} ({extra})" if extra else r.objective
        groups.setdefault((r.task, base), {})[r.config_id] = r
    for (task, base), configs in groups.items():
        local = _varying([_flatten(r.params) for r in configs.values()]) if len(configs) > 1 else []
        for cid, r in configs.items():
            flat = _flatten(r.params)
            extra = ", ".join(f"{k}={flat.get(k)}" for k in local)
            if not extra:
                labels[(task, r.objective, cid)] = base
            elif base.endswith(")"):
                labels[(task, r.objective, cid)] = f"{base[:-1]}, {extra})"
            else:
                labels[(task, r.objective, cid)] = f"{base} ({extra})"
    return labels


def _global_part(r: RunResult) -> dict[str, Any]:
    return {"objective": r.params.get("objective", {}), "budget": r.params.get("budget", {})}


def runs_of(results: Sequence[RunResult]) -> dict[str, list[Run]]:
    """``{task: [Run]}`` in a fixed order (task, label, seed)."""
    labels = config_labels(results)
    tasks: dict[str, list[Run]] = {}
    for r in results:
        metrics = r.metrics.model_dump()
        run = Run(
            label=labels[(r.task, r.objective, r.config_id)], seed=r.seed, status=r.status, result=r,
            views=retrieval_views(metrics), ranks=_per_query_ranks(metrics),
            classification={k: float(v) for k, v in (r.metrics.classification or {}).items() if v is not None},
            stability=stability_scalars(r.stability),
        )
        tasks.setdefault(r.task, []).append(run)
    for runs in tasks.values():
        runs.sort(key=lambda run: (run.label, run.seed, run.result.config_id))
    return dict(sorted(tasks.items()))


def curve(run: Run, monitor: str, name: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of one stored curve, without missing points; empty when the run has none."""
    block = run.result.stability.get(monitor, {})
    curves = block.get(CURVES, {}) if isinstance(block, Mapping) else {}
    steps, values = curves.get("step", []), curves.get(name, [])
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]
