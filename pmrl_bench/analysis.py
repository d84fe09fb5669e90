"""Result files as a pandas DataFrame, for notebooks: ``pmrl_bench.load_results("results")``.

Files are found and validated by :class:`~pmrl_bench.results.store.ResultStore` (the reader behind the CLI and the
leaderboards), and rows are labelled by the leaderboard's own helpers, so a ``label`` or ``protocol`` here is
exactly what the pages print. pandas and the leaderboard modules (which import torch) are imported on the first
call only: importing :mod:`pmrl_bench` stays light.

**Wide form** (the default): one row per result file, rows ordered by task, label, seed and config id (the order
of the pages). Columns, in this order (a section is left out when no file has it; within a section columns are
sorted as noted):

1. ``task``, ``objective``, ``label`` (the configuration as the leaderboard pages name it), ``protocol`` (the
   page's protocol section: ``scratch``, ``warm:infonce:300``, ...), ``tuned`` (bool: parameters from a tuning
   study), ``seed``, ``status`` (``ok``, ``diverged``, ``failed`` or ``not_applicable``; only ``ok`` runs carry
   test metrics),
   ``config_id``, ``run_id``, ``path`` (the file, relative to the results directory).
2. Test metrics of the main cosine view ``retrieval``: ``mean_R@1``, ``mean_R@5``, ``mean_R@10``, ``mean_MdR``
   (each the mean over the run's directions, as the pages average them), then ``R@1[<query>-><gallery>]`` for every
   direction, then ``R@5[...]``, ``R@10[...]``, ``MdR[...]``.
3. Every other retrieval-shaped view the same way, prefixed by its name: ``retrieval_multimodal/mean_R@1``,
   ``retrieval_multimodal/R@1[fou+zer->pix]``, ...; views in name order.
4. ``classification/<probe>`` (``classification/linear:fused``, ``classification/knn:pix``, ...); any other
   scalar a metrics entry holds as ``<entry>[/<key>...]``.
5. The same for the metrics of the starting encoders (step 0), prefixed ``at_init/``: ``at_init/mean_R@1``,
   ``at_init/R@1[pix->zer]``, ``at_init/classification/linear:fused``, ...
6. ``robustness/...``: every number of the robustness block by its path, retrieval views named as above
   (``robustness/missing_modality/mean_R@1/fou``, ``robustness/missing_modality/retrieval/fou/R@1[pix->zer]``);
   lists (the noise curves) are left out.
7. ``stability/<monitor>/<key>[/<sub>]``: the scalars the leaderboard's stability tables read (curves and lists
   left out), e.g. ``stability/optimisation/loss_final``, ``stability/singular/sigma1_share``.
8. ``cost/<key>[/<sub>]``: ``cost/ms_per_step``, ``cost/params``, ``cost/peak_memory_bytes``, ...
9. ``selection/rule``, ``selection/step``, ``selection/metric``, ``selection/value``; ``splits/train``,
   ``splits/val``, ``splits/test``, ``splits/dropped`` (rows dropped before splitting; empty when none were);
   ``init/<key>`` (the checkpoint a warm start began from); ``tuning/<key>``.
10. ``device``, ``cpu/capability`` and ``cpu/model`` (the ATen CPU capability and the CPU model the run computed
    with; empty for older files), ``versions/<package>`` (``versions/pmrl_bench``, ``versions/torch``,
    ``versions/python``, ..., ``versions/plugins/<distribution>``), ``data_fingerprint``, ``duration_s``,
    ``created`` (a UTC timestamp; NaT when a file has none), ``error``, ``diverged_step``, ``command``,
    ``schema_version``.
11. ``params/<section>/<key>...``: the parameters that ran, one column per leaf (a list as its JSON text).

Sections 2 to 4, 6 to 8 and 11 are sorted by column name within a view or block; metric columns are floats, NaN
where a run has no such value. Per-query ranks are not columns.

**Long form** (``long=True``): one row per (run, retrieval view, direction) of the test metrics, tidy for seaborn
and pivots: the identifying columns of section 1, then ``view`` (``retrieval`` first, then the other views),
``direction``, ``query``, ``gallery`` and ``R@1``, ``R@5``, ``R@10``, ``MdR`` (and any further score a view
holds). Runs without test metrics (``failed``, ``diverged``) have no rows.

An invalid result file raises :class:`~pmrl_bench.errors.UsageError` (which the CLI reports as one line, exit
status 2) with one line naming it; ``skip_invalid=True`` instead warns and leaves it out, as ``pmrl-bench show``
and ``leaderboard`` do. The labels of the pages depend on the set of results they are built from: load the whole
results directory, then filter the frame.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmrl_bench.console import escape
from pmrl_bench.errors import UsageError
from pmrl_bench.results.schema import PER_QUERY_KEY, RETRIEVAL_KEYS, CpuFacts, RunResult, is_retrieval_view
from pmrl_bench.results.store import ResultStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ID_COLUMNS", "LONG_COLUMNS", "load_results"]

MAIN_VIEW = "retrieval"  # the cosine view the pages rank by (leaderboard.data.MAIN_VIEW)
ID_COLUMNS = ("task", "objective", "label", "protocol", "tuned", "seed", "status", "config_id", "run_id", "path")
LONG_COLUMNS = (*ID_COLUMNS, "view", "direction", "query", "gallery", *RETRIEVAL_KEYS)
# The fields of RunResult in section 10, in column order (``versions`` flattened to versions/<package>).
RUN_FIELDS = ("device", "cpu", "versions", "data_fingerprint", "duration_s", "created", "error", "diverged_step",
              "command", "schema_version")
# Column prefixes owned by a section: a metrics entry of that name is put under "metrics/" so nothing collides.
_RESERVED = {*ID_COLUMNS, *RUN_FIELDS, "at_init", "robustness", "stability", "cost", "selection", "splits", "init",
             "tuning", "params", "metrics"}
# Sections, in column order.
_IDS, _MAIN, _VIEWS, _OTHER, _INIT, _ROBUST, _STABILITY, _COST, _RUN_INFO, _RUN, _PARAMS = range(11)
_SCORE_ORDER = {key: i for i, key in enumerate(RETRIEVAL_KEYS)}

SortKey = tuple[Any, ...]
Columns = dict[str, tuple[SortKey, Any]]  # column -> (where it goes, value)


def load_results(path: str | os.PathLike[str] = "results", long: bool = False,
                 skip_invalid: bool = False) -> pd.DataFrame:
    """The result files under ``path`` (a results directory: ``TASK/OBJECTIVE/CONFIG-seedN.json``) as a DataFrame.

    ``long=False``: one row per result file; ``long=True``: one row per (run, retrieval view, direction). The
    module docstring lists the columns. Raises :class:`~pmrl_bench.errors.UsageError` when ``path`` is not a
    directory, holds no result files, or holds an invalid one (unless ``skip_invalid``, which warns and skips it).
    """
    import pandas as pd

    from pmrl_bench.leaderboard.data import Run, config_labels
    from pmrl_bench.leaderboard.protocols import by_protocol

    root = Path(path)
    results = _read(root, skip_invalid)
    labels = config_labels(results)
    runs = sorted((Run(labels[(r.task, r.objective, r.config_id)], r.seed, r.status, r) for r in results),
                  key=lambda run: (run.result.task, run.label, run.seed, run.result.config_id))
    protocols: dict[int, str] = {}
    for task in dict.fromkeys(run.result.task for run in runs):
        for group in by_protocol([run for run in runs if run.result.task == task]):
            protocols.update((id(run), group.name) for run in group.runs)

    store = ResultStore(root)
    ids = [_ids(run.result, run.label, protocols[id(run)], store) for run in runs]
    if long:
        rows = [{**row, **tidy} for row, run in zip(ids, runs, strict=True) for tidy in _long_rows(run.result)]
        scores = sorted({k for row in rows for k in row if k not in LONG_COLUMNS}, key=_score_key)
        frame = pd.DataFrame(rows, columns=[*LONG_COLUMNS, *scores])
        return frame.astype({"seed": "int64", "tuned": "bool"})

    columns: dict[str, SortKey] = {}
    rows = []
    for row, run in zip(ids, runs, strict=True):
        wide = _wide(run.result)
        wide.update({name: ((_IDS, i), row[name]) for i, name in enumerate(ID_COLUMNS)})
        columns.update((name, where) for name, (where, _) in wide.items())
        rows.append({name: value for name, (_, value) in wide.items()})
    order = sorted(columns, key=lambda name: columns[name])
    frame = pd.DataFrame(rows, columns=order).astype({"seed": "int64", "tuned": "bool"})
    created = frame["created"].where(frame["created"] != "")
    frame["created"] = pd.to_datetime(created, utc=True, errors="coerce", format="ISO8601")
    return frame


def _read(root: Path, skip_invalid: bool) -> list[RunResult]:
    """Every result under ``root``, read and validated by the store; a bad file is an error (or a warning)."""
    if not root.exists():
        raise UsageError(f"results directory {str(root)!r} does not exist")
    if not root.is_dir():
        raise UsageError(f"{str(root)!r} is not a results directory (TASK/OBJECTIVE/CONFIG-seedN.json files)")
    results, problems = ResultStore(root).scan()
    for problem in problems:
        reason = " ".join(problem.reason.split())  # one line, whatever the reason holds
        if reason.startswith("misplaced result"):
            reason += f"; is {str(root)!r} the results directory (the one holding TASK/OBJECTIVE/)?"
        if not skip_invalid:
            more = f" (and {len(problems) - 1} more invalid result files)" if len(problems) > 1 else ""
            raise UsageError(f"{problem.path}: {reason}{more}; pass skip_invalid=True to load the others")
        warnings.warn(escape(f"skipped {problem.path}: {reason}"), stacklevel=3)  # shown on a terminal
    if not results:
        skipped = f" ({len(problems)} invalid files skipped)" if problems else ""
        raise UsageError(f"no result files in {str(root)!r}{skipped}; pass the directory that "
                         "'pmrl-bench run --results DIR' wrote")
    return results


def _ids(r: RunResult, label: str, protocol: str, store: ResultStore) -> dict[str, Any]:
    path = store.path_for(r.task, r.objective, r.config_id, r.seed).relative_to(store.root).as_posix()
    values = (r.task, r.objective, label, protocol, bool(r.tuning), r.seed, r.status, r.config_id, r.run_id, path)
    return dict(zip(ID_COLUMNS, values, strict=True))


def _long_rows(r: RunResult) -> list[dict[str, Any]]:
    from pmrl_bench.leaderboard.data import retrieval_views

    rows = []
    views = retrieval_views(r.metrics.model_dump())
    for view in sorted(views, key=lambda v: (v != MAIN_VIEW, v)):
        for direction, scores in sorted(views[view].items()):
            query, _, gallery = direction.partition("->")
            rows.append({"view": view, "direction": direction, "query": query, "gallery": gallery, **scores})
    return rows


def _score_key(name: str) -> tuple[int, str]:
    return _SCORE_ORDER.get(name, len(_SCORE_ORDER)), name


# ---- wide form ---------------------------------------------------------------------------------------------------

def _wide(r: RunResult) -> Columns:
    """Every column of one run but the identifying ones: name -> (sort key, value)."""
    from pmrl_bench.leaderboard.data import stability_scalars

    out: Columns = {}
    out.update(_metrics(r.metrics.model_dump(), "", 0))
    if r.metrics_at_init is not None:
        out.update(_metrics(r.metrics_at_init.model_dump(), "at_init/", 1))
    out.update(_numbers(r.robustness, "robustness/", (_ROBUST,)))
    out.update({f"stability/{k}": ((_STABILITY, k), v) for k, v in stability_scalars(r.stability).items()})
    out.update(_leaves(r.cost, "cost/", (_COST,)))
    out.update(_leaves(r.selection.model_dump(), "selection/", (_RUN_INFO, 0)))
    if r.splits is not None:
        out.update(_leaves(dict(r.splits), "splits/", (_RUN_INFO, 1)))  # every field, "dropped" too when unset
    out.update(_leaves(r.init or {}, "init/", (_RUN_INFO, 2)))
    out.update(_leaves(r.tuning or {}, "tuning/", (_RUN_INFO, 3)))
    for i, name in enumerate(RUN_FIELDS):
        value = getattr(r, name)
        if name == "cpu":  # every field, empty for files written before results recorded the CPU
            value = dict(value) if value is not None else dict.fromkeys(CpuFacts.model_fields)
        if isinstance(value, Mapping):
            out.update(_leaves(value, f"{name}/", (_RUN, i)))
        else:
            out[name] = ((_RUN, i, ""), value)
    out.update(_leaves(r.params, "params/", (_PARAMS,)))
    return out


def _metrics(metrics: Mapping[str, Any], prefix: str, stage: int) -> Columns:
    """Sections 2 to 4 (``stage`` 0) or 5 (``stage`` 1, names prefixed ``at_init/``)."""
    out: Columns = {}
    for name, value in metrics.items():
        if name == PER_QUERY_KEY or value is None:
            continue
        if name == MAIN_VIEW and isinstance(value, Mapping):  # the main view, even without directions (failed run)
            out.update(_view(value, prefix, ((_MAIN, 0) if stage == 0 else (_INIT, 0, 0))))
        elif is_retrieval_view(value):
            out.update(_view(value, f"{prefix}{name}/", ((_VIEWS, name) if stage == 0 else (_INIT, 0, 1, name))))
        else:
            head = f"metrics/{name}" if not prefix and name in _RESERVED else name
            where = (_OTHER,) if stage == 0 else (_INIT, 1)
            out.update(_numbers({head: value}, prefix, where))
    return out


def _view(view: Mapping[str, Mapping[str, Any]], prefix: str, where: SortKey) -> Columns:
    """``mean_<score>`` over the directions, then ``<score>[<direction>]``, scores in R@1, R@5, R@10, MdR order."""
    out: Columns = {}
    scores = sorted({k for s in view.values() for k in s}, key=_score_key)
    for i, score in enumerate(scores):
        values = [float(s[score]) for s in view.values() if s.get(score) is not None]
        if values:
            out[f"{prefix}mean_{score}"] = ((*where, 0, i), sum(values) / len(values))
        for direction, s in sorted(view.items()):
            if s.get(score) is not None:
                out[f"{prefix}{score}[{direction}]"] = ((*where, 1, i, direction), float(s[score]))
    return out


def _numbers(block: Mapping[str, Any], prefix: str, where: SortKey) -> Columns:
    """The numbers of a nested block by their ``/``-joined path; retrieval views as :func:`_view` names them."""
    out: Columns = {}
    for key, value in block.items():
        name = f"{prefix}{key}"
        if is_retrieval_view(value):
            out.update(_view(value, f"{name}/", (*where, name)))
        elif isinstance(value, Mapping):
            out.update(_numbers(value, f"{name}/", where))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = ((*where, name), float(value))
    return out


def _leaves(block: Mapping[str, Any], prefix: str, where: SortKey) -> Columns:
    """Every leaf of a nested block by its ``/``-joined path, as stored; a list as its JSON text."""
    out: Columns = {}
    for key, value in block.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, f"{name}/", where))
        else:
            if isinstance(value, (list, Mapping)):
                value = json.dumps(value, sort_keys=True)
            out[name] = ((*where, name), value)
    return out
