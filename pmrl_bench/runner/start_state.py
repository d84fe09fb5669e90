"""The evaluation of the state a run starts from, done once for every run of a sweep that starts from it.

Every objective of a seed starts from the same encoders (the seed's random weights, its init stage or the user's
checkpoint), and everything the starting state's evaluation holds but ``retrieval_native`` depends on the encoders
alone. So a sweep evaluates each starting state once and hands a copy to each run, adding the objective's own
``retrieval_native`` view where it has one. A copy is exactly what evaluating again would give: the key holds
everything the evaluation depends on (the weights themselves, the encoders' choice and parameters, the task's data,
the split, the probes, the seed, the device and torch's thread count).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch

from pmrl_bench.runner.checkpoints import tensors_sha256
from pmrl_bench.runner.spec import RunSpec

State = dict[str, torch.Tensor]
# Starting states kept at once: a sweep meets one per task, seed and protocol, usually in a row; the metrics of one
# are a few kilobytes (the per-query ranks of the test split).
CAPACITY = 32


class StartEvaluations:
    """A bounded in-process memo of starting states' objective-independent metrics, keyed by what they depend on.

    ``fingerprints``: the data fingerprint of each task of the sweep; a task without one is never memoised.
    """

    def __init__(self, fingerprints: Mapping[str, str], capacity: int = CAPACITY) -> None:
        self.fingerprints = fingerprints
        self.capacity = capacity
        self.computed = 0  # evaluations done here
        self.reused = 0  # evaluations handed out again
        self._metrics: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def key(self, spec: RunSpec, state: State, split: str, device: torch.device) -> str | None:
        """What the starting state's objective-independent evaluation depends on; None when the task has no
        data fingerprint."""
        fingerprint = self.fingerprints.get(spec.task)
        if fingerprint is None:
            return None
        canonical = json.dumps({
            "task": spec.task, "task_params": spec.task_params, "data": fingerprint,
            "encoders": {m: {"name": e.name, "params": e.params} for m, e in spec.encoders.items()},
            "weights": tensors_sha256(state), "split": split, "probe": spec.probe, "seed": spec.seed,
            "device": str(device), "threads": torch.get_num_threads(),
        }, sort_keys=True, default=repr)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def metrics(self, key: str | None, evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A copy of the metrics stored under ``key``, or of ``evaluate()``'s, which are stored."""
        if key is None:
            return evaluate()
        found = self._metrics.get(key)
        if found is None:
            found = evaluate()
            self.computed += 1
            self._metrics[key] = found
            while len(self._metrics) > self.capacity:
                self._metrics.popitem(last=False)
        else:
            self.reused += 1
            self._metrics.move_to_end(key)
        return copy.deepcopy(found)
