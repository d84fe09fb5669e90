"""Turn result files into markdown leaderboards (pandas for the tables, tabulate for the markdown).

Everything is sorted and formatted deterministically: the same results give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pmrl_bench.results import RunResult

HIGHER_IS_BETTER = {"R@1": True, "R@5": True, "R@10": True, "MdR": False}


def _config_label(results: Sequence[RunResult]) -> dict[tuple[str, str], str]:
    """Row label per (objective, config_id): the objective name, plus the parameters that differ between its configs."""
    by_objective: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_objective.setdefault(r.objective, {})[r.config_id] = r.params
    labels = {}
    for objective, configs in by_objective.items():
        flat = {cid: _flatten(params) for cid, params in configs.items()}
        keys = sorted({k for f in flat.values() for k in f})
        varying = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat.values()}) > 1]
        for cid, f in flat.items():
            extra = ", ".join(f"{k}={f.get(k)}" for k in varying)
            labels[(objective, cid)] = f"{objective} ({extra})" if extra else objective
    return labels


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _runs_frame(results: Sequence[RunResult]) -> pd.DataFrame:
    labels = _config_label(results)
    rows = []
    for r in results:
        row: dict[str, Any] = {"row": labels[(r.objective, r.config_id)], "seed": r.seed, "status": r.status}
        for direction, scores in r.metrics.retrieval.items():
            for metric, value in scores.items():
                row[f"retrieval/{direction}/{metric}"] = value
        for name, value in (r.metrics.classification or {}).items():
            row[f"classification/{name}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.dropna().astype(float)
    if values.empty:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _format(mean: float, std: float, best: bool, percent: bool) -> str:
    if np.isnan(mean):
        return "–"
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.1f} ± {std * scale:.1f}"
    return f"**{text}**" if best else text


def _table(frame: pd.DataFrame, columns: list[tuple[str, str, bool, bool]]) -> str:
    """columns: (header, column key, higher_is_better, percent). Rows are configs; cells mean ± std over ok seeds."""
    ok = frame[frame["status"] == "ok"]
    rows = sorted(frame["row"].unique())
    stats = {
        (row, header): _mean_std(ok.loc[ok["row"] == row, key]) if key in ok else (float("nan"), float("nan"))
        for row in rows
        for header, key, _, _ in columns
    }
    best = {}
    for header, _, higher, _ in columns:
        means = [stats[(row, header)][0] for row in rows if not np.isnan(stats[(row, header)][0])]
        if means:
            best[header] = max(means) if higher else min(means)
    body = []
    for row in rows:
        runs = frame[frame["row"] == row]
        counts = runs["status"].value_counts()
        seeds = f"{counts.get('ok', 0)}/{len(runs)}"
        if counts.get("diverged", 0) or counts.get("failed", 0):
            seeds += f" ({counts.get('diverged', 0)} diverged, {counts.get('failed', 0)} failed)"
        cells = [
            _format(*stats[(row, header)], best=stats[(row, header)][0] == best.get(header), percent=percent)
            for header, _, _, percent in columns
        ]
        body.append([f"`{row}`", seeds, *cells])
    headers = ["objective", "seeds ok", *(f"{h} {'↑' if higher else '↓'}" for h, _, higher, _ in columns)]
    return pd.DataFrame(body, columns=headers).to_markdown(index=False, disable_numparse=True)


def _with_mean_columns(frame: pd.DataFrame, directions: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for metric in HIGHER_IS_BETTER:
        keys = [f"retrieval/{d}/{metric}" for d in directions if f"retrieval/{d}/{metric}" in frame]
        frame[f"retrieval/mean/{metric}"] = frame[keys].mean(axis=1, skipna=False) if keys else np.nan
    return frame


def _task_page(task: str, results: Sequence[RunResult]) -> str:
    frame = _runs_frame(results)
    directions = sorted({d for r in results for d in r.metrics.retrieval})
    frame = _with_mean_columns(frame, directions)
    lines = [f"# Leaderboard: `{task}`", "", *_provenance(results), ""]
    lines += ["## Retrieval (cosine), R@1 in %", "",
              "Mean ± std over seeds; best in bold. Rank rule: pessimistic (ties count against the query).", ""]
    summary_cols = [(f"mean {m}", f"retrieval/mean/{m}", HIGHER_IS_BETTER[m], m != "MdR") for m in HIGHER_IS_BETTER]
    lines += [_table(frame, summary_cols), ""]
    lines += ["### R@1 per direction (query→gallery)", ""]
    lines += [_table(frame, [(d.replace("->", "→"), f"retrieval/{d}/R@1", True, True) for d in directions]), ""]
    probes = sorted({k for r in results for k in (r.metrics.classification or {})})
    if probes:
        lines += ["## Classification (accuracy %, probe on frozen embeddings)", ""]
        lines += [_table(frame, [(p, f"classification/{p}", True, True) for p in probes]), ""]
    return "\n".join(lines)


def _provenance(results: Sequence[RunResult]) -> list[str]:
    commands = sorted({r.command for r in results if r.command})
    budgets = sorted({json.dumps(r.params.get("budget", {}), sort_keys=True) for r in results})
    versions = sorted({json.dumps({k: v for k, v in r.versions.items() if k != "plugins"}, sort_keys=True) for r in results})
    plugins = sorted({f"{k} {v}" for r in results for k, v in r.versions.get("plugins", {}).items()})
    seeds = sorted({r.seed for r in results})
    lines = [
        "Generated from result files by `pmrl-bench leaderboard`; do not edit by hand.",
        "",
        f"- Runs: {len(results)} result files; seeds {', '.join(map(str, seeds))}",
    ]
    lines += [f"- Command: `{c}`" for c in commands]
    lines += [f"- Budget: {_inline(json.loads(b))}" for b in budgets]
    lines += [f"- Versions: {_inline(json.loads(v))}" for v in versions]
    if plugins:
        lines.append(f"- Plugins: {', '.join(plugins)}")
    return lines


def _inline(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def _overview(tasks: dict[str, Sequence[RunResult]], problems: Iterable[str]) -> str:
    lines = ["# pmrl-bench leaderboards", "", "Generated from result files by `pmrl-bench leaderboard`; do not edit by hand.", ""]
    rows = []
    for task, results in sorted(tasks.items()):
        objectives = sorted({r.objective for r in results})
        rows.append([f"[{task}]({task}.md)", len(results), ", ".join(objectives)])
    lines.append(pd.DataFrame(rows, columns=["task", "runs", "objectives"]).to_markdown(index=False))
    problems = list(problems)
    if problems:
        lines += ["", "## Skipped result files", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def build_leaderboards(results: Sequence[RunResult], problems: Iterable[str] = ()) -> dict[str, str]:
    """``{file name: markdown}``: one page per task plus ``README.md``, an overview linking them."""
    tasks: dict[str, list[RunResult]] = {}
    for r in sorted(results, key=lambda r: (r.task, r.objective, r.config_id, r.seed)):
        tasks.setdefault(r.task, []).append(r)
    pages = {f"{task}.md": _task_page(task, rs) for task, rs in tasks.items()}
    pages["README.md"] = _overview(tasks, problems)
    return pages


def write_leaderboards(out_dir: Path, pages: dict[str, str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages.items():
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # atomic: a reader never sees half a page
        written.append(path)
    return written


def check_leaderboards(out_dir: Path, pages: dict[str, str]) -> list[str]:
    """Names of pages that are missing or differ from what the results give."""
    stale = []
    for name, text in pages.items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale
