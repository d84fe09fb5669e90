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

from pmrl_bench.composite import display_name
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


def protocol_tag(r: RunResult) -> str:
    """How a label names the protocol, the selection rule and, for tuned parameters, their tuning budget."""
    parts = [r.protocol, r.selection.rule]
    if r.tuning:
        trials, sampler, seed = r.tuning.get("trials"), r.tuning.get("sampler"), r.tuning.get("seed")
        parts.append(f"tuned: {trials} trials on validation, {sampler}, sampler seed {seed}")
    return ", ".join(str(p) for p in parts)


def config_labels(results: Sequence[RunResult]) -> dict[tuple[str, str, str], str]:
    """Row label per (task, objective, config_id): the objective's name, the parameters that tell its configurations
    apart, and ``[protocol, selection rule(, tuned: ...)]``, e.g.
    ``infonce (budget.lr=0.0001) [warm:infonce:300, last]``.

    Objective and budget parameters that vary across the configurations of one objective under one protocol,
    selection rule and tuning come first, so one configuration keeps one label on every task (tuned configurations
    are told apart by their tuning, not by the values it found); encoder or task parameters are added only where a
    task still has two configurations of one objective with the same label.
    """
    def group(r: RunResult) -> tuple[str, str]:
        return r.objective, protocol_tag(r)

    by_group: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in results:
        by_group.setdefault(group(r), {})[json.dumps(_global_part(r), sort_keys=True, default=repr)] = _global_part(r)
    global_keys = {g: _varying([_flatten(p) for p in parts.values()]) for g, parts in by_group.items()}

    labels: dict[tuple[str, str, str], str] = {}
    groups: dict[tuple[str, str, str], dict[str, RunResult]] = {}
    for r in results:
        flat = _flatten(_global_part(r))
        extra = ", ".join(f"{k}={flat.get(k)}" for k in global_keys[group(r)])
        name = display_name(r.objective)
        base = f"{name} ({extra})" if extra else name
        groups.setdefault((r.task, base, protocol_tag(r)), {})[r.config_id] = r
    for (task, base, tag), configs in groups.items():
        local = _varying([_flatten(_local_part(r)) for r in configs.values()]) if len(configs) > 1 else []
        for cid, r in configs.items():
            flat = _flatten(_local_part(r))
            extra = ", ".join(f"{k}={flat.get(k)}" for k in local)
            if not extra:
                label = base
            elif base.endswith(")"):
                label = f"{base[:-1]}, {extra})"
            else:
                label = f"{base} ({extra})"
            labels[(task, r.objective, cid)] = f"{label} [{tag}]"
    return labels


def _global_part(r: RunResult) -> dict[str, Any]:
    if r.tuning:  # a tuned configuration is named by its tuning, not by the values the study found
        return {}
    return {"objective": r.params.get("objective", {}), "budget": r.params.get("budget", {})}


def _local_part(r: RunResult) -> dict[str, Any]:
    return {k: v for k, v in r.params.items() if k not in ("protocol", "selection", "tuning")}


def _run(r: RunResult, label: str, metrics: Mapping[str, Any]) -> Run:
    return Run(
        label=label, seed=r.seed, status=r.status, result=r,
        views=retrieval_views(metrics), ranks=_per_query_ranks(metrics),
        classification={k: float(v) for k, v in (metrics.get("classification") or {}).items() if v is not None},
        stability=stability_scalars(r.stability),
    )


def runs_of(results: Sequence[RunResult]) -> dict[str, list[Run]]:
    """``{task: [Run]}`` in a fixed order (task, label, seed)."""
    labels = config_labels(results)
    tasks: dict[str, list[Run]] = {}
    for r in results:
        run = _run(r, labels[(r.task, r.objective, r.config_id)], r.metrics.model_dump())
        tasks.setdefault(r.task, []).append(run)
    for runs in tasks.values():
        runs.sort(key=lambda run: (run.label, run.seed, run.result.config_id))
    return dict(sorted(tasks.items()))


def hardware(results: Sequence[RunResult]) -> str:
    """What the results were computed on: ``devices cpu (1 thread); CPUs <model> (<capability>)``. CPU kernels move
    numbers a little from one CPU to another, so a reader comparing results needs the CPUs as well as the devices."""
    devices = sorted({r.device for r in results})
    cpus = sorted({f"{r.cpu.model} ({r.cpu.capability})" for r in results if r.cpu is not None})
    return f"devices {', '.join(devices)}" + (f"; CPUs {', '.join(cpus)}" if cpus else "")


def at_init(run: Run, label: str | None = None) -> Run | None:
    """The run's scores at step 0 (the encoders it was handed, evaluated like the final ones), as a Run; None when
    the result has none (version 1 files, failed runs)."""
    if run.result.metrics_at_init is None or run.status != "ok":
        return None
    return _run(run.result, label or run.label, run.result.metrics_at_init.model_dump())


def curve(run: Run, monitor: str, name: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of one stored curve, without missing points; empty when the run has none."""
    block = run.result.stability.get(monitor, {})
    curves = block.get(CURVES, {}) if isinstance(block, Mapping) else {}
    steps, values = curves.get("step", []), curves.get(name, [])
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]
