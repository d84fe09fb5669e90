"""PNG plots beside the markdown, rebuilt from the curves stored in result files.

matplotlib is an optional extra (``pip install 'pmrl-bench[plots]'``): without it no PNG is produced and the
markdown is unchanged. Rendering is deterministic on a given installation (Agg backend, the default style
whatever the user's matplotlibrc, no "Software" metadata); the bytes still depend on the matplotlib and
FreeType versions, which is why ``--check`` checks that the plots exist rather than comparing their bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from pmrl_bench.leaderboard.data import Run, curve
from pmrl_bench.leaderboard.tables import by_label


def plot_names(stem: str) -> dict[str, str]:
    """File name per plot of a task whose page is ``<stem>.md`` (the markdown links them whether or not matplotlib
    is installed)."""
    return {kind: f"{stem}.{kind}.png" for kind in ("curves", "spectrum", "robustness", "tuning")}


def _legend(label: str) -> str:
    """A row label as literal legend text: matplotlib would parse ``$...$`` as mathtext (and fail on bad TeX)."""
    return label.replace("$", r"\$")


# matplotlib's tab10 then the darker half of tab20b: 20 colours a reader can tell apart
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
            "#756bb1", "#636363")


def _styles(labels: Sequence[str]) -> dict[str, dict[str, object]]:
    """Line style per row label: one colour per objective (the label's first word), and a solid, dashed, dotted …
    line per configuration of that objective (default and tuned, say), so 18 configurations stay tellable apart."""
    lines = ("-", "--", ":", "-.")
    objectives: dict[str, list[str]] = {}
    for label in labels:
        objectives.setdefault(label.split(" ")[0], []).append(label)
    styles = {}
    for i, (_, group) in enumerate(objectives.items()):
        for j, label in enumerate(sorted(group, key=lambda label: (len(label), label))):  # the plainest is solid
            styles[label] = {"color": _PALETTE[i % len(_PALETTE)], "linestyle": lines[j % len(lines)]}
    return styles


def _legend_below(figure, axes, title_height: float = 0.0) -> None:  # noqa: ANN001 - matplotlib objects
    """Every labelled line of ``axes`` in one legend under the plots (two columns when the labels fit), the figure
    grown to fit it."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    width, height = figure.get_size_inches()
    longest = max((len(label) for label in labels), default=0)
    columns = 2 if 2 * (0.048 * longest + 0.6) <= width else 1  # about 0.048 in per character at 7 pt
    rows = -(-len(labels) // columns)
    legend_height = 0.15 * rows + 0.15
    figure.set_size_inches(width, height + legend_height)
    share = legend_height / (height + legend_height)
    if labels:
        figure.legend(handles, labels, loc="lower center", ncol=columns, fontsize=7, frameon=False)
    figure.tight_layout(rect=(0, share, 1, 1 - title_height))


def plots_with_data(runs: Sequence[Run]) -> list[str]:
    """The plot kinds the results hold data for (decided without matplotlib, so the markdown never depends on it)."""
    kinds = []
    if any(curve(r, "singular", "sigma1_share")[0] or curve(r, "optimisation", "grad_norm")[0]
           for r in runs if r.status == "ok"):
        kinds.append("curves")
    if any(any(_final_spectrum(r)) for r in runs if r.status == "ok"):
        kinds.append("spectrum")
    if any(_noise_curve(r)[0] for r in runs if r.status == "ok"):
        kinds.append("robustness")
    return kinds


def _noise_curve(run: Run) -> tuple[list[float], list[float]]:
    """``(levels, mean R@1)`` of the noisy-modality view; empty when the result has none."""
    block = run.result.robustness.get("noise", {}) if isinstance(run.result.robustness, dict) else {}
    levels, values = block.get("levels") or [], block.get("mean_R@1") or []
    pairs = [(float(lv), float(v)) for lv, v in zip(levels, values) if v is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _robustness_figure(task: str, rows: dict[str, list[Run]]) -> bytes | None:
    figure = _figure(10.0, 3.6)
    ax = figure.subplots(1, 1)
    drawn = False
    styles = _styles(list(rows))
    for label, runs in rows.items():
        curves = [_noise_curve(r) for r in runs if r.status == "ok"]
        curves = [c for c in curves if c[0]]
        if not curves or len({tuple(c[0]) for c in curves}) != 1:
            continue
        levels = curves[0][0]
        mean = np.mean([c[1] for c in curves], axis=0)
        ax.plot(levels, mean, marker="o", **styles[label], label=_legend(label))
        drawn = True
    if not drawn:
        return None
    ax.set_xlabel("noise (multiples of the modality's feature std)")
    ax.set_ylabel("R@1 (mean over modalities)")
    ax.grid(alpha=0.3)
    ax.set_title(f"{task}: retrieval with one modality's inputs made noisy (mean of ok seeds)", fontsize=10)
    _legend_below(figure, [ax])
    return _png(figure)


def tuning_figure(task: str, studies: dict[str, list[float]]) -> bytes | None:
    """Best-so-far validation score per trial, one line per study (``{label: values in trial order}``)."""
    try:
        import matplotlib.style
    except ImportError:
        return None
    with matplotlib.style.context("default"):
        figure = _figure(10.0, 3.6)
        ax = figure.subplots(1, 1)
        styles = _styles(sorted(studies))
        for label, values in sorted(studies.items()):
            if values:
                best = np.maximum.accumulate(values)
                ax.plot(range(1, len(best) + 1), best, marker=".", **styles[label], label=_legend(label))
        ax.set_xlabel("trial")
        ax.set_ylabel("best validation score so far")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.set_title(f"{task}: tuning, best so far per objective", fontsize=10)
        _legend_below(figure, [ax])
        return _png(figure)


def _mean_curve(runs: Sequence[Run], monitor: str, name: str) -> tuple[list[float], list[float]]:
    """Mean over seeds at the steps every seed has (diverged seeds stop early and are left out of the mean)."""
    curves = [curve(r, monitor, name) for r in runs if r.status == "ok"]
    curves = [c for c in curves if c[0]]
    if not curves:
        return [], []
    steps = sorted(set(curves[0][0]).intersection(*(set(c[0]) for c in curves[1:])))
    values = [float(np.mean([dict(zip(*c))[s] for c in curves])) for s in steps]
    return steps, values


def _figure(width: float = 10.0, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _curves_figure(task: str, rows: dict[str, list[Run]]) -> bytes | None:
    panels = [("singular", "sigma1_share", "σ1 share (1 = aligned)", False),
              ("optimisation", "grad_norm", "gradient norm before clipping", True)]
    figure = _figure()
    axes = figure.subplots(1, 2)
    drawn = False
    styles = _styles(list(rows))
    for ax, (monitor, name, title, log) in zip(axes, panels):
        for label, runs in rows.items():
            for r in runs:
                steps, values = curve(r, monitor, name)
                if steps:
                    ax.plot(steps, values, color=styles[label]["color"], alpha=0.25, linewidth=0.8)
            steps, values = _mean_curve(runs, monitor, name)
            if steps:
                ax.plot(steps, values, **styles[label], linewidth=2, label=_legend(label))
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("step")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if not drawn:
        return None
    figure.suptitle(f"{task}: probe-batch curves (thin: seeds, thick: mean of ok seeds)", fontsize=10)
    _legend_below(figure, axes, title_height=0.02)
    return _png(figure)


def _final_spectrum(r: Run) -> tuple[list[float], list[float]]:
    singular = r.result.stability.get("singular", {})
    sigma = [v for v in singular.get("sigma_mean", []) if v is not None] if isinstance(singular, dict) else []
    representation = r.result.stability.get("representation", {})
    spectra = representation.get("spectrum", {}) if isinstance(representation, dict) else {}
    rows = [[v for v in s if v is not None] for s in spectra.values() if s]
    width = min((len(s) for s in rows), default=0)
    covariance = list(np.mean([s[:width] for s in rows], axis=0)) if width else []
    return sigma, covariance


def _spectrum_figure(task: str, rows: dict[str, list[Run]]) -> bytes | None:
    figure = _figure()
    left, right = figure.subplots(1, 2)
    drawn = False
    styles = _styles(list(rows))
    for label, runs in rows.items():
        spectra = [_final_spectrum(r) for r in runs if r.status == "ok"]
        sigmas = [s for s, _ in spectra if s]
        if sigmas and len({len(s) for s in sigmas}) == 1:
            mean = np.mean(sigmas, axis=0)
            left.plot(range(1, len(mean) + 1), mean, marker="o", **styles[label], label=_legend(label))
            drawn = True
        covs = [c for _, c in spectra if c]
        if covs:
            width = min(len(c) for c in covs)
            mean = np.clip(np.mean([c[:width] for c in covs], axis=0), 1e-6, None)
            right.plot(range(1, width + 1), mean, **styles[label], label=_legend(label))
            drawn = True
    if not drawn:
        return None
    left.set_title("σj of each instance's stack (mean)", fontsize=11)
    left.set_xlabel("j")
    left.xaxis.get_major_locator().set_params(integer=True)
    left.grid(alpha=0.3)
    right.set_title("embedding covariance eigenvalues (share)", fontsize=11)
    right.set_xlabel("eigenvalue index")
    right.set_yscale("log")
    right.grid(alpha=0.3)
    figure.suptitle(f"{task}: spectra at the end of training (probe batch, mean of ok seeds)", fontsize=10)
    _legend_below(figure, [left, right], title_height=0.02)
    return _png(figure)


def render_plots(task: str, runs: Sequence[Run], stem: str | None = None) -> dict[str, bytes]:
    """``{file name: PNG bytes}`` for one task whose page is ``<stem>.md`` (default: the task's name); empty when
    matplotlib is not installed or nothing was recorded."""
    try:
        import matplotlib.style
    except ImportError:
        return {}
    rows = by_label(runs)
    names = plot_names(stem or task)
    out = {}
    with matplotlib.style.context("default"):
        for kind, render in (("curves", _curves_figure), ("spectrum", _spectrum_figure),
                             ("robustness", _robustness_figure)):
            png = render(task, rows)
            if png is not None:
                out[names[kind]] = png
    return out


def scaling_figure(panels: Mapping[tuple[str, str], Mapping[str, Mapping[int, tuple[float, float, int]]]],
                   name: Callable[[str], str] = str) -> bytes | None:
    """Mean R@1 against the number of modalities k: one panel per (task, protocol) of ``panels``
    (``{objective: {k: (mean %, sd %, seeds)}}``), one line per objective (``name`` gives its legend) with the spread
    over seeds as error bars; a k with no seed is left out of its line."""
    try:
        import matplotlib.style
    except ImportError:
        return None
    if not panels:
        return None
    with matplotlib.style.context("default"):
        figure = _figure(4.5 * len(panels), 3.6)
        axes = np.atleast_1d(figure.subplots(1, len(panels)))
        styles = _styles(sorted({name(o) for by_objective in panels.values() for o in by_objective}))
        for ax, ((task, protocol), by_objective) in zip(axes, panels.items()):
            for objective, cells in sorted(by_objective.items()):
                ks = [k for k in sorted(cells) if cells[k][2] > 0]
                if ks:
                    label = name(objective)
                    ax.errorbar(ks, [cells[k][0] for k in ks], yerr=[np.nan_to_num(cells[k][1]) for k in ks],
                                marker="o", capsize=2, label=_legend(label), **styles[label])
            ax.set_xlabel("modalities k")
            ax.set_ylabel("mean R@1 (%)")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.set_title(f"{task}, {protocol}", fontsize=10)
        _legend_below(figure, list(axes))
        return _png(figure)
