"""The warm-start stage (``--init OBJECTIVE:STEPS``) and user checkpoints (``--init-checkpoint PATH``).

An init stage is trained once per (task and its parameters, encoders, init objective and its parameters, init
budget, seed, task data) and stored under ``<results>/_init/<task>/<key>-seed<seed>.safetensors``, written
atomically. ``key`` hashes those inputs, so changing any of them trains a new stage; the file's metadata holds the
key and the SHA-256 of its tensors, both checked when it is reused (a file that fails is retrained). Concurrent
sweeps claim a stage like a run, so it is never trained twice at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pmrl_bench.console import say
from pmrl_bench.components import TaskData
from pmrl_bench.errors import PmrlBenchError, SaveFailed, UsageError
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore
from pmrl_bench.results.locks import lock_in
from pmrl_bench.results.store import CLAIMS_DIR, INIT_DIR
from pmrl_bench.runner import checkpoints
from pmrl_bench.runner.distributed import SINGLE_PROCESS, DistributedContext, broadcast
from pmrl_bench.runner.spec import RunSpec

State = dict[str, torch.Tensor]


class InitStageWriteError(SaveFailed):
    """A trained init stage could not be saved (disk full, directory read-only): the command stops (exit status 1)."""


class InitStageFailed(PmrlBenchError):
    """The init stage diverged or failed: every run that needs it is recorded as failed."""


def init_key(spec: RunSpec, fingerprint: str) -> str:
    """What identifies an init stage: everything it depends on, the seed included."""
    assert spec.protocol.init is not None
    canonical = json.dumps({
        "task": spec.task, "task_params": spec.task_params, "data": fingerprint,
        "encoders": {m: {"name": e.name, "params": e.params} for m, e in spec.encoders.items()},
        "init": spec.protocol.init.params(), "seed": spec.seed,
    }, sort_keys=True, default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class InitStages:
    """Finds, trains and caches the starting encoder weights of the runs of a sweep."""

    store: ResultStore
    registry: Registry
    device: torch.device
    fingerprints: dict[str, str]
    precision: str = "auto"
    progress: bool = False
    world: DistributedContext = SINGLE_PROCESS
    # the stages (task/file name) this process trained and read back, in order; a stage counts once per process
    trained: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    _cache: dict[str, tuple[State, dict[str, Any]]] = field(default_factory=dict)

    def path(self, spec: RunSpec, key: str) -> Path:
        return self.store.root / INIT_DIR / spec.task / f"{key}-seed{spec.seed}{checkpoints.SUFFIX}"

    def _name(self, spec: RunSpec, key: str) -> str:
        """The stage as ``trained`` and ``reused`` list it: task and file name."""
        return f"{spec.task}/{self.path(spec, key).name}"

    def starting_state(self, spec: RunSpec, data: TaskData) -> tuple[State | None, dict[str, Any] | None]:
        """``(state, record)`` the run starts from, or ``(None, None)`` from scratch. ``record`` goes in the result."""
        if spec.protocol.kind == "warm":
            return self._warm(spec, data)
        if spec.protocol.kind == "checkpoint":
            return self._checkpoint(spec)
        return None, None

    def _checkpoint(self, spec: RunSpec) -> tuple[State, dict[str, Any]]:
        path = Path(spec.protocol.checkpoint_path or "")
        cached = self._cache.get(f"checkpoint:{path}")
        if cached is None:
            state, _ = checkpoints.read(path)
            digest = checkpoints.tensors_sha256(state)
            if digest != spec.protocol.checkpoint_sha256:
                raise UsageError(f"--init-checkpoint {str(path)!r} changed while the sweep ran; run it again")
            cached = (state, {"sha256": digest, "file": str(path)})
            self._cache[f"checkpoint:{path}"] = cached
        return cached

    def _warm(self, spec: RunSpec, data: TaskData) -> tuple[State, dict[str, Any]]:
        key = init_key(spec, self.fingerprints.get(spec.task, ""))
        cached = self._cache.get(key + f"-{spec.seed}")
        if cached is not None:
            return cached
        path = self.path(spec, key)
        if self.world.enabled:
            cached = self._warm_in_lockstep(spec, data, key, path)
        else:
            with lock_in(self.store.root / CLAIMS_DIR, f"{INIT_DIR}/{spec.task}/{path.name}"):
                found = self._valid(path, key)
                if found is None:
                    found = self._train(spec, data, key, path)
                else:
                    self.reused.append(self._name(spec, key))
            cached = found
        self._cache[key + f"-{spec.seed}"] = cached
        return cached

    def _warm_in_lockstep(self, spec: RunSpec, data: TaskData, key: str, path: Path) -> tuple[State, dict[str, Any]]:
        """Under torchrun every rank trains the stage together; rank 0 decides, writes, and the others read."""
        if self.world.is_main:
            with lock_in(self.store.root / CLAIMS_DIR, f"{INIT_DIR}/{spec.task}/{path.name}"):
                found = self._valid(path, key)
                broadcast(found is None, self.world)
                if found is None:
                    found = self._train(spec, data, key, path)
            broadcast(True, self.world)  # the file is written
            return found
        if broadcast(None, self.world):
            self._train(spec, data, key, None)
        broadcast(None, self.world)
        found = self._valid(path, key)
        if found is None:
            raise InitStageFailed(f"init stage {path.name} is missing after rank 0 trained it")
        return found

    def _valid(self, path: Path, key: str) -> tuple[State, dict[str, Any]] | None:
        """The stored stage if it is complete and is the one asked for; a damaged or foreign file is retrained."""
        if not path.is_file():
            return None
        try:
            state, metadata = checkpoints.read(path)
        except UsageError as exc:
            say(f"warning: retraining init stage {path.name}: {exc}")
            return None
        digest = checkpoints.tensors_sha256(state)
        if metadata.get("key") != key or metadata.get("sha256") != digest:
            say(f"warning: retraining init stage {path.name}: its key or tensor hash does not match")
            return None
        return state, self._record(path, key, digest)

    def _record(self, path: Path, key: str, digest: str) -> dict[str, Any]:
        return {"sha256": digest, "key": key, "file": path.relative_to(self.store.root).as_posix()}

    def _train(self, spec: RunSpec, data: TaskData, key: str, path: Path | None) -> tuple[State, dict[str, Any]]:
        from pmrl_bench.runner.spec import SCRATCH
        from pmrl_bench.runner.train import TrainOptions, train

        init = spec.protocol.init
        assert init is not None
        stage = RunSpec(spec.task, spec.task_params, init.objective, init.objective_params, spec.encoders, init.budget,
                        spec.seed, protocol=SCRATCH)
        try:
            trained = train(stage, data, self.registry,
                            TrainOptions(device=self.device, progress=self.progress, precision=self.precision,
                                         world=self.world),
                            keep_initial=False)
        except Exception as exc:  # noqa: BLE001 - a broken init objective fails the runs that need it
            raise InitStageFailed(f"init stage {init.objective}:{init.budget.steps} failed: "
                                  f"{type(exc).__name__}: {exc}") from None
        if trained.status != "ok":
            raise InitStageFailed(f"init stage {init.objective}:{init.budget.steps} diverged at step "
                                  f"{trained.diverged_step}")
        state = checkpoints.encoder_state(trained.encoders)
        digest = checkpoints.tensors_sha256(state)
        self.trained.append(self._name(spec, key))
        if path is None:  # a non-main rank: rank 0 writes
            return state, {}
        metadata = {"key": key, "sha256": digest, "task": spec.task, "seed": str(spec.seed),
                    "protocol": spec.protocol.name, "init": json.dumps(init.params(), sort_keys=True),
                    "format": "pmrl-bench encoder state, keys <modality>.<parameter>"}
        try:
            checkpoints.write(path, state, metadata)
        except OSError as exc:  # the disk, not the init objective: stop, as for a result that cannot be written
            raise InitStageWriteError(
                f"cannot save init stage {path.relative_to(self.store.root).as_posix()} under {self.store.root}: "
                f"{exc.strerror or exc}; nothing was recorded as failed: free space or make the directory writable, "
                "then run the same command again"
            ) from None
        return state, self._record(path, key, digest)
