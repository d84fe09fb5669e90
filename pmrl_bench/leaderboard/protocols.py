"""Protocols on the pages: results of different protocols never rank together, and a warm start is read against
the representation it handed every objective.

* :func:`by_protocol` splits a task's runs into one group per protocol (``scratch`` first);
* :func:`describe` says in one paragraph where the encoders of a group started;
* :func:`init_reference` is the step-0 row: the encoders every objective of a seed started from (random ones under
  ``scratch``, the init stage's under a warm start), shown for reference and never ranked;
* :func:`step0_changes` compares each configuration with its own step 0 on the same test queries and seeds (a
  paired test, Holm-corrected over the configurations), so "improves / preserves / destroys the alignment it was
  given" reads at a glance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pmrl_bench.leaderboard.data import MAIN_VIEW, Run, at_init
from pmrl_bench.leaderboard.md import code, text
from pmrl_bench.leaderboard.significance import ALPHA, PairedTest, format_delta, format_p, holm, paired_test
from pmrl_bench.leaderboard.tables import markdown, seeds_cell

SCRATCH = "scratch"


@dataclass(frozen=True)
class ProtocolGroup:
    name: str  # e.g. "warm:infonce:300"
    runs: list[Run]

    @property
    def warm(self) -> bool:
        return self.name != SCRATCH


def by_protocol(runs: Sequence[Run]) -> list[ProtocolGroup]:
    """One group per protocol, ``scratch`` first, then by name; two protocols that share a name (a warm start with
    another init learning rate, say) are separate groups, the name then carrying a short hash."""
    keyed: dict[str, list[Run]] = {}
    params: dict[str, dict[str, Any]] = {}
    for run in runs:
        key = json.dumps(run.result.params.get("protocol") or {"name": run.result.protocol}, sort_keys=True,
                         default=repr)
        keyed.setdefault(key, []).append(run)
        params[key] = {"name": run.result.protocol}
    names: dict[str, list[str]] = {}
    for key in keyed:
        names.setdefault(params[key]["name"], []).append(key)
    groups = []
    for name, keys in names.items():
        for key in sorted(keys):
            shown = name if len(keys) == 1 else f"{name}#{_short(key)}"
            groups.append(ProtocolGroup(shown, keyed[key]))
    return sorted(groups, key=lambda g: (g.name != SCRATCH, g.name))


def _short(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:6]


def slug(name: str) -> str:
    """A protocol's name as part of a file name: ``warm:infonce:300`` -> ``warm-infonce-300``."""
    return "".join(c if c.isalnum() or c in "._+-" else "-" for c in name)


def describe(group: ProtocolGroup) -> str:
    """Where the encoders of this group started, from the protocol recorded in the result files."""
    sample = group.runs[0].result
    protocol = sample.params.get("protocol") or {}
    budgets = sorted({json.dumps(r.result.params.get("budget", {}), sort_keys=True) for r in group.runs})
    budget = json.loads(budgets[0]) if len(budgets) == 1 else {}
    then = (f"{budget.get('steps')} steps at learning rate {budget.get('lr')}" if budget
            else "the budget of its own configuration")
    if group.name == SCRATCH:
        return (f"Protocol {code(group.name)}: every objective trains its encoders from random weights for "
                f"{text(then)}. The row {code(reference_label(group))} scores those random encoders (not ranked).")
    init = protocol.get("init")
    if init:
        ib = init.get("budget", {})
        settings = ", ".join(f"{k}={v}" for k, v in sorted(init.get("objective_params", {}).items()))
        return (
            f"Protocol {code(group.name)} (warm start): the encoders are first trained with "
            f"{code(init.get('objective'))} for {ib.get('steps')} steps at learning rate {ib.get('lr')} "
            f"(batch {ib.get('batch_size')}; {text(settings) or 'its defaults'}), once per seed; "
            "every objective then continues from those exact weights "
            f"for {text(then)}. The row {code(reference_label(group))} is the init stage itself (the step-0 scores "
            "every objective of a seed started from; not ranked)."
        )
    digest = protocol.get("checkpoint_sha256") or ""
    return (f"Protocol {code(group.name)}: every objective starts from the encoder weights of a checkpoint (tensor "
            f"SHA-256 {code(digest[:16])}…) and trains for {text(then)}. The row {code(reference_label(group))} "
            "scores the checkpoint itself (not ranked).")


# Every step-0 row's label starts so: ``step 0 (random encoders)``, ``step 0 (init stage: infonce:300)``.
INIT_PREFIX = "step 0 ("


def reference_label(group: ProtocolGroup) -> str:
    """The step-0 row's label: what the encoders at step 0 were."""
    if not group.warm:
        return f"{INIT_PREFIX}random encoders)"
    if group.name.startswith("warm:"):
        return f"{INIT_PREFIX}init stage: {group.name.removeprefix('warm:')})"
    return f"{INIT_PREFIX}{group.name})"


def init_reference(group: ProtocolGroup) -> list[Run]:
    """The step-0 scores, one Run per seed, from the step-0 metrics of one configuration: the random encoders under
    ``scratch``, the init stage (or checkpoint) under a warm start. Cosine retrieval and probes are the same for every
    objective of a seed; objective-specific views (``retrieval_native``) are left out."""
    label = reference_label(group)
    by_seed: dict[int, Run] = {}
    for run in sorted(group.runs, key=lambda r: (r.label, r.seed)):
        if run.seed in by_seed:
            continue
        initial = at_init(run, label)
        if initial is not None:
            initial.views = {v: s for v, s in initial.views.items() if v != "retrieval_native"}
            initial.ranks = {v: s for v, s in initial.ranks.items() if v != "retrieval_native"}
            initial.stability = {}
            by_seed[run.seed] = initial
    return [by_seed[s] for s in sorted(by_seed)]


def step0_changes(rows: Mapping[str, Sequence[Run]], view: str = MAIN_VIEW) -> list[PairedTest]:
    """Per configuration: final minus step 0 on the same seeds and test queries, Holm-corrected together."""
    tests = []
    for label, runs in rows.items():
        initial = [r0 for r0 in (at_init(r) for r in runs) if r0 is not None]
        if initial:
            tests.append(paired_test(runs, initial, label, "step 0", view))
    return holm(tests)


def change_verdict(test: PairedTest, alpha: float = ALPHA) -> str:
    if test.p_value is None:
        return f"not tested ({test.note})" if test.note else "not tested"
    if not test.significant(alpha):
        return "preserves"
    return "improves" if test.delta > 0 else "degrades"


def step0_table(rows: Mapping[str, Sequence[Run]], tests: Sequence[PairedTest], alpha: float = ALPHA) -> str:
    """Markdown: per configuration, mean R@1 at step 0 and at the end, the paired change and its verdict."""
    from pmrl_bench.leaderboard.significance import _mean_recall

    def mean(runs: Sequence[Run]) -> str:
        values = [m for m in (_mean_recall(r, MAIN_VIEW, 1) for r in runs if r.status == "ok") if m is not None]
        return "–" if not values else f"{100 * sum(values) / len(values):.1f}"

    body = []
    for test in tests:
        runs = rows[test.a]
        initial = [r0 for r0 in (at_init(r) for r in runs) if r0 is not None]
        body.append([code(test.a), seeds_cell(runs), mean(initial), mean(runs), format_delta(test),
                     format_p(test.p_corrected), change_verdict(test, alpha)])
    headers = ["configuration", "seeds ok", "step 0 mean R@1", "final mean R@1", "Δ (points) [95%]", "p (Holm)",
               "verdict"]
    return markdown(body, headers)
