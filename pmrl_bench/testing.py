"""A pytest plugin for authors of pmrl-bench plugins: fixtures and a reusable contract suite.

It is registered through the ``pytest11`` entry point, so it is active in every pytest session of an environment
where pmrl-bench is installed (with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, add ``-p pmrl_bench.testing``).

Fixtures (all isolated per test):

* ``pmrl_plugin_manager``: a fresh plugin manager with the built-ins only (installed plugins are not loaded, and a
  plugin that fails to register fails the test), installed as the process-wide manager for the test.
* ``pmrl_register_plugin(plugin, name=None)``: register an in-process plugin (a module or an object with
  ``@hookimpl`` methods) on that manager; it is unregistered after the test.
* ``pmrl_tiny_task``: the :class:`~pmrl_bench.components.TaskData` of :class:`TinyTask` (three vector modalities).
* ``pmrl_default_encoders``: the default encoder of each of its modalities, as an ``nn.ModuleDict``.

The contract suite: subclass :class:`ObjectiveContract`, :class:`EncoderContract` or :class:`TaskContract` in a
``test_*.py`` file and set ``plugin`` and the component's name; every check is one test, and a broken component
fails with a :class:`ContractViolation` that says what is wrong. The ``check_*`` functions and :func:`run_one_step`
are the same checks for use outside those classes.

torch is imported inside functions only: this module is loaded by every pytest session of the environment.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest

from pmrl_bench import hookimpl
from pmrl_bench import plugins as _plugins
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.errors import DataError, UsageError
from pmrl_bench.registry import Component, Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pmrl_bench.results import RunResult

__all__ = [
    "REFERENCE_OBJECTIVE",
    "TINY_TASK",
    "ContractViolation",
    "EncoderContract",
    "ObjectiveContract",
    "TaskContract",
    "TinyTask",
    "check_encoder",
    "check_entry_points",
    "check_objective",
    "check_parameters",
    "check_task",
    "default_encoders",
    "reference_objective",
    "run_one_step",
    "unit_embeddings",
]

# Names of the helper components the fixtures register; prefixed so they cannot clash with a real plugin.
TINY_TASK = "pmrl-testing-tiny"
REFERENCE_OBJECTIVE = "pmrl-testing-infonce"


class ContractViolation(AssertionError):
    """A component breaks the plugin contract; the message says what is wrong and what is expected."""


# -- the helper components ------------------------------------------------------------------------------------------
class TinyTask:
    """Seeded vector modalities sharing a latent block, with labels: small enough for unit tests, not a benchmark."""

    def __init__(
        self, modalities: int = 3, n_train: int = 64, n_test: int = 32, input_dim: int = 8,
        num_classes: int = 4, seed: int = 0,
    ) -> None:
        if modalities < 2 or min(n_train, n_test) < 2 or input_dim < 1 or num_classes < 2:
            raise ValueError("need modalities >= 2, n_train and n_test >= 2, input_dim >= 1, num_classes >= 2")
        self.modalities, self.n_train, self.n_test = modalities, n_train, n_test
        self.input_dim, self.num_classes, self.seed = input_dim, num_classes, seed

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        n = self.n_train + self.n_test
        shared = rng.standard_normal((n, 4))
        labels = np.argmax(shared @ rng.standard_normal((4, self.num_classes)), axis=1).astype(np.int64)
        names = [f"m{i}" for i in range(self.modalities)]
        inputs = {
            m: (shared @ rng.standard_normal((4, self.input_dim)) + 0.1 * rng.standard_normal((n, self.input_dim)))
            .astype(np.float32)
            for m in names
        }
        cut = self.n_train
        return TaskData(
            [Modality(m, VECTOR, (self.input_dim,)) for m in names],
            Split({m: x[:cut] for m, x in inputs.items()}, labels[:cut]),
            Split({m: x[cut:] for m, x in inputs.items()}, labels[cut:]),
            num_classes=self.num_classes,
        )


def reference_objective(temperature: float = 0.1) -> nn.Module:
    """Fixed-temperature symmetric InfoNCE over every modality pair: what the encoder and task contracts train with."""
    import itertools

    import torch
    import torch.nn.functional as F

    from pmrl_bench.components import ObjectiveOutput

    class PairwiseInfoNCE(torch.nn.Module):
        def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
            terms = {}
            for a, b in itertools.combinations(embeddings, 2):
                logits = embeddings[a] @ embeddings[b].T / temperature
                labels = torch.arange(len(logits), device=logits.device)
                terms[f"{a}|{b}"] = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
            return ObjectiveOutput(torch.stack(list(terms.values())).mean(), terms)

    return PairwiseInfoNCE()


class _HelperComponents:
    """The in-process plugin behind :data:`TINY_TASK` and :data:`REFERENCE_OBJECTIVE`."""

    @hookimpl
    def register_tasks(self, register: Any) -> None:
        register(TINY_TASK, TinyTask, description="pmrl_bench.testing: tiny seeded vector task")

    @hookimpl
    def register_objectives(self, register: Any) -> None:
        register(REFERENCE_OBJECTIVE, reference_objective, description="pmrl_bench.testing: pairwise InfoNCE")


HELPER_PLUGIN_NAME = "pmrl_bench.testing"


def _ensure_helpers(manager: _plugins.PluginManager) -> Registry:
    if not manager.pm.has_plugin(HELPER_PLUGIN_NAME):
        manager.register_plugin(_HelperComponents(), name=HELPER_PLUGIN_NAME)
    return manager.registry


# -- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture
def pmrl_plugin_manager(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginManager:
    """A fresh manager with the built-ins and this module's helpers, set as ``pmrl_bench.plugins.MANAGER``."""
    monkeypatch.setenv(_plugins.ENV_LOAD_PLUGINS, "")  # installed plugins do not leak into the test
    monkeypatch.setenv(_plugins.ENV_STRICT, "1")  # a plugin that fails to register fails the test, never skipped
    manager = _plugins.PluginManager()
    monkeypatch.setattr(_plugins, "MANAGER", manager)
    _ensure_helpers(manager)
    return manager


@pytest.fixture
def pmrl_register_plugin(pmrl_plugin_manager: _plugins.PluginManager) -> Iterator[Callable[..., str]]:
    """``register(plugin, name=None) -> name``: register an in-process plugin for this test only."""
    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> str:
        names.append(pmrl_plugin_manager.register_plugin(plugin, name))
        return names[-1]

    yield register
    for name in reversed(names):
        if pmrl_plugin_manager.pm.has_plugin(name):
            pmrl_plugin_manager.unregister_plugin(name)


@pytest.fixture
def pmrl_tiny_task() -> TaskData:
    """Three vector modalities m0, m1, m2 (8 features each), 64 train and 32 test instances, 4 classes."""
    return TinyTask().load()


@pytest.fixture
def pmrl_default_encoders(pmrl_plugin_manager: _plugins.PluginManager, pmrl_tiny_task: TaskData) -> nn.ModuleDict:
    """The registered default encoder of each modality of ``pmrl_tiny_task``, output dimension 16, seed 0."""
    return default_encoders(pmrl_plugin_manager.registry, pmrl_tiny_task, dim=16, seed=0)


# -- building blocks ------------------------------------------------------------------------------------------------
def default_encoders(registry: Registry, data: TaskData, dim: int = 16, seed: int = 0) -> nn.ModuleDict:
    """The default encoder for each modality's kind, built as the runner builds it."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.ModuleDict(
        {m.name: registry.default_encoder_for(m.kind).create(modality=m, dim=dim) for m in data.modalities}
    )


def unit_embeddings(
    modalities: int | Sequence[str] = 3, batch: int = 8, dim: int = 16, seed: int = 0, requires_grad: bool = False
) -> dict[str, torch.Tensor]:
    """Random L2-normalised ``(batch, dim)`` embeddings per modality, reproducible from ``seed``.

    With ``requires_grad`` the returned tensors are leaves, so ``.grad`` holds what reaches each modality.
    """
    import torch
    import torch.nn.functional as F

    names = [f"m{i}" for i in range(modalities)] if isinstance(modalities, int) else list(modalities)
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name in names:
        tensor = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
        out[name] = tensor.requires_grad_(requires_grad)
    return out


def _label(component: Component) -> str:
    return f"{component.kind} {component.name!r} (plugin {component.plugin!r})"


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def check_parameters(component: Component, params: Mapping[str, Any] | None = None) -> None:
    """Every parameter has a JSON default (runs need no ``--set``; result files record them); ``params`` are known."""
    for name, parameter in component.parameters().items():
        if parameter.default is inspect.Parameter.empty:
            raise ContractViolation(
                f"{_label(component)}: parameter {name!r} has no default; 'pmrl-bench run' builds components "
                "without --set, so give every parameter a default"
            )
        if not _json_value(parameter.default):
            raise ContractViolation(
                f"{_label(component)}: the default of parameter {name!r} is {parameter.default!r}, which is not a "
                "JSON value; result files record parameters as JSON, so use numbers, strings, booleans, None or lists"
            )
    try:
        component.resolve_params(dict(params or {}))
    except UsageError as exc:
        raise ContractViolation(f"{_label(component)}: {exc}") from None


def _create(component: Component, params: Mapping[str, Any], **supplied: Any) -> Any:
    try:
        return component.create(**supplied, **params)
    except Exception as exc:
        raise ContractViolation(f"{_label(component)}: building it raised {type(exc).__name__}: {exc}") from exc


def build_objective(component: Component, params: Mapping[str, Any] | None = None) -> nn.Module:
    """``factory(**params)``, which must return a ``torch.nn.Module``."""
    import torch

    objective = _create(component, params or {})
    if not isinstance(objective, torch.nn.Module):
        raise ContractViolation(
            f"{_label(component)}: the factory returned {type(objective).__name__}; an objective must be a "
            "torch.nn.Module, so that the runner can hand its parameters to the optimiser and move it to the device"
        )
    return objective


# -- objectives -----------------------------------------------------------------------------------------------------
def _forward(component: Component, objective: nn.Module, embeddings: Mapping[str, torch.Tensor], case: str) -> Any:
    """Call the objective and check the shape of what it returns; returns ``(loss, terms)``."""
    import torch

    try:
        output = objective(dict(embeddings))
    except Exception as exc:
        raise ContractViolation(
            f"{_label(component)}: forward raised {type(exc).__name__}: {exc} (input: {case})"
        ) from exc
    loss, terms = getattr(output, "loss", None), getattr(output, "terms", None)
    if loss is None or terms is None:
        raise ContractViolation(
            f"{_label(component)}: forward returned {type(output).__name__}, not an object with .loss and .terms; "
            "return pmrl_bench.components.ObjectiveOutput(loss=<scalar tensor>, terms={name: <scalar tensor>})"
        )
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0 or not loss.is_floating_point():
        shown = f"a tensor of shape {tuple(loss.shape)} and dtype {loss.dtype}" if isinstance(loss, torch.Tensor) else (
            type(loss).__name__
        )
        raise ContractViolation(
            f"{_label(component)}: .loss is {shown}; it must be a 0-dim floating tensor (reduce it, e.g. .mean())"
        )
    if not isinstance(terms, Mapping):
        raise ContractViolation(f"{_label(component)}: .terms is {type(terms).__name__}; it must be a dict")
    for key, value in terms.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or value.ndim != 0:
            raise ContractViolation(
                f"{_label(component)}: .terms[{key!r}] is {type(value).__name__}"
                f"{f' of shape {tuple(value.shape)}' if isinstance(value, torch.Tensor) else ''}; .terms maps names "
                "(str) to 0-dim tensors"
            )
    return loss, terms


def _input_cases(
    modalities: int, batch_sizes: Sequence[int], dim: int, seed: int
) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """Random unit embeddings at each batch size, and perfectly aligned ones (every modality the same)."""
    for batch in batch_sizes:
        yield f"{modalities} modalities x batch {batch} x dim {dim}, random unit vectors", unit_embeddings(
            modalities, batch, dim, seed
        )
    one = unit_embeddings(1, max(batch_sizes), dim, seed)["m0"]
    yield f"{modalities} modalities x batch {max(batch_sizes)} x dim {dim}, every modality identical", {
        f"m{i}": one.clone() for i in range(modalities)
    }


def check_objective_output(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
    batch_sizes: Sequence[int] = (2, 8), dim: int = 16, seed: int = 0,
) -> None:
    """Forward returns a scalar ``.loss`` and scalar ``.terms`` at every batch size."""
    objective = build_objective(component, params)
    for case, embeddings in _input_cases(modalities, batch_sizes, dim, seed):
        _forward(component, objective, embeddings, case)


def check_objective_finite(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
    batch_sizes: Sequence[int] = (2, 8), dim: int = 16, seed: int = 0,
) -> None:
    """The loss and every term are finite for random and for perfectly aligned unit-norm inputs."""
    import torch

    objective = build_objective(component, params)
    for case, embeddings in _input_cases(modalities, batch_sizes, dim, seed):
        loss, terms = _forward(component, objective, embeddings, case)
        if not torch.isfinite(loss):
            raise ContractViolation(
                f"{_label(component)}: loss is not finite ({float(loss)}) for {case}; a loss must be finite for "
                "any unit-norm input (guard divisions, logs and square roots)"
            )
        for key, value in terms.items():
            if not torch.isfinite(value):
                raise ContractViolation(f"{_label(component)}: term {key!r} is not finite ({float(value)}) for {case}")


def _loss_and_gradients(
    component: Component, objective: nn.Module, modalities: int, batch: int, dim: int, seed: int, case: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor | None], dict[str, torch.Tensor | None]]:
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    raw = {f"m{i}": torch.randn(batch, dim, generator=generator, requires_grad=True) for i in range(modalities)}
    embeddings = {m: F.normalize(x, dim=-1) for m, x in raw.items()}  # as the runner feeds it
    loss, _ = _forward(component, objective, embeddings, case)
    if not loss.requires_grad:
        raise ContractViolation(
            f"{_label(component)}: the loss carries no gradient (requires_grad is False) for {case}; it must be "
            "computed from the input embeddings with differentiable torch operations (no .detach(), .item(), "
            "numpy or torch.no_grad())"
        )
    objective.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach(), {m: x.grad for m, x in raw.items()}, {n: p.grad for n, p in objective.named_parameters()}


def check_objective_gradients(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
    batch_sizes: Sequence[int] = (2, 8), dim: int = 16, seed: int = 0,
) -> None:
    """A finite, non-zero gradient reaches every modality, and every learnable parameter gets a finite gradient."""
    import torch

    objective = build_objective(component, params)
    batch = max(batch_sizes)
    case = f"{modalities} modalities x batch {batch} x dim {dim}, random unit vectors"
    _, to_inputs, to_params = _loss_and_gradients(component, objective, modalities, batch, dim, seed, case)
    for modality, grad in to_inputs.items():
        if grad is not None and not bool(torch.isfinite(grad).all()):
            raise ContractViolation(
                f"{_label(component)}: the gradient with respect to modality {modality!r} is not finite ({case})"
            )
        if grad is None or not bool(grad.abs().sum() > 0):
            raise ContractViolation(
                f"{_label(component)}: no gradient reaches modality {modality!r} ({case}); the loss must depend "
                "on every modality, or that modality's encoder never trains"
            )
    for name, parameter in objective.named_parameters():
        if not parameter.requires_grad:
            continue
        grad = to_params[name]
        if grad is None:
            raise ContractViolation(
                f"{_label(component)}: learnable parameter {name!r} gets no gradient, so it never trains; use it "
                "in the loss or make it a buffer (register_buffer)"
            )
        if not bool(torch.isfinite(grad).all()):
            raise ContractViolation(f"{_label(component)}: the gradient of parameter {name!r} is not finite ({case})")


def check_objective_determinism(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
    batch_sizes: Sequence[int] = (2, 8), dim: int = 16, seed: int = 0,
) -> None:
    """Built and run twice under the same seed (as the runner seeds a run), loss and gradients are identical."""
    import torch

    from pmrl_bench.runner.train import seed_everything

    batch = max(batch_sizes)
    case = f"{modalities} modalities x batch {batch} x dim {dim}"
    runs = []
    for _ in range(2):
        seed_everything(seed)
        objective = build_objective(component, params)
        runs.append(_loss_and_gradients(component, objective, modalities, batch, dim, seed, case))
    (loss_a, grads_a, _), (loss_b, grads_b, _) = runs
    same = torch.equal(loss_a, loss_b) or bool(torch.isnan(loss_a) & torch.isnan(loss_b))
    if not same:
        raise ContractViolation(
            f"{_label(component)}: two runs under seed {seed} gave losses {float(loss_a)!r} and {float(loss_b)!r} "
            f"({case}); draw randomness from torch's (or numpy's / random's) global generator, which the runner "
            "seeds, never from an unseeded source"
        )
    for modality, grad in grads_a.items():
        other = grads_b[modality]
        if grad is not None and other is not None and not torch.allclose(grad, other, rtol=0, atol=0, equal_nan=True):
            raise ContractViolation(
                f"{_label(component)}: two runs under seed {seed} gave different gradients for modality {modality!r}"
            )


def check_objective_native_score(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3, dim: int = 16,
    seed: int = 0,
) -> bool:
    """If the objective has ``native_score(queries, gallery)`` (see ``pmrl_bench.evaluation.native``), it returns a
    finite ``(Nq, Ng)`` tensor for each of its ``native_directions``. Returns whether a native score exists."""
    import torch

    from pmrl_bench.evaluation.native import direction_key, native_directions

    objective = build_objective(component, params)
    native = getattr(objective, "native_score", None)
    if native is None:
        return False
    if not callable(native):
        raise ContractViolation(f"{_label(component)}: native_score is {type(native).__name__}, not a method")
    names = [f"m{i}" for i in range(modalities)]
    try:
        directions = native_directions(objective, names)
    except Exception as exc:
        raise ContractViolation(f"{_label(component)}: native_directions({names}) failed: {exc}") from exc
    embeddings = unit_embeddings(names, 7, dim, seed)
    for queries, gallery in directions:
        shown = f"native_score for {direction_key(queries, gallery)} (5 queries, 7 candidates, dim {dim})"
        with torch.no_grad():
            try:
                scores = native({m: embeddings[m][:5] for m in queries}, {m: embeddings[m] for m in gallery})
            except Exception as exc:
                raise ContractViolation(f"{_label(component)}: {shown} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (5, 7):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ContractViolation(
                f"{_label(component)}: {shown} returned {got}; expected a (5, 7) tensor of scores, higher meaning "
                "more similar (queries and gallery are mappings {modality: (N, D) tensor})"
            )
        if not bool(torch.isfinite(scores).all()):
            raise ContractViolation(f"{_label(component)}: {shown} returned non-finite scores")
    return True


def check_objective(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
    batch_sizes: Sequence[int] = (2, 8), dim: int = 16, seed: int = 0,
) -> None:
    """Every objective check except the run through the runner (see :func:`run_one_step`)."""
    shape = {"modalities": modalities, "batch_sizes": batch_sizes, "dim": dim, "seed": seed}
    check_parameters(component, params)
    check_objective_output(component, params, **shape)
    check_objective_finite(component, params, **shape)
    check_objective_gradients(component, params, **shape)
    check_objective_determinism(component, params, **shape)
    check_objective_native_score(component, params, modalities=modalities, dim=dim, seed=seed)
    after_step = getattr(build_objective(component, params), "after_optimizer_step", None)
    if after_step is not None and not callable(after_step):
        raise ContractViolation(f"{_label(component)}: after_optimizer_step is not callable")


# -- encoders -------------------------------------------------------------------------------------------------------
def check_encoder(
    component: Component, data: TaskData, params: Mapping[str, Any] | None = None, *, dim: int = 16,
    batch: int = 8, seed: int = 0,
) -> list[str]:
    """Output shape, finiteness, gradients, determinism and batch independence on every modality of ``data``
    whose kind the encoder accepts. Returns the modalities checked."""
    import torch
    import torch.nn.functional as F

    from pmrl_bench.runner.train import seed_everything

    kinds = tuple(component.metadata.get("modality_kinds", ()))
    modalities = [m for m in data.modalities if not kinds or m.kind in kinds]
    if not modalities:
        raise ContractViolation(
            f"{_label(component)}: accepts {', '.join(kinds)} modalities and the task has none "
            f"({', '.join(f'{m.name}: {m.kind}' for m in data.modalities)}); check it on a task with such a modality"
        )
    for modality in modalities:
        x = torch.as_tensor(np.asarray(data.train.inputs[modality.name][:batch]))
        where = f"{_label(component)} on modality {modality.name!r} ({modality.kind}, shape {modality.shape})"
        outputs = []
        for _ in range(2):
            seed_everything(seed)
            encoder = _create(component, params or {}, modality=modality, dim=dim)
            if not isinstance(encoder, torch.nn.Module):
                raise ContractViolation(f"{where}: the factory returned {type(encoder).__name__}, not a torch.nn.Module")
            encoder.train()
            try:
                out = encoder(x)
            except Exception as exc:
                raise ContractViolation(
                    f"{where}: forward on a batch of shape {tuple(x.shape)} raised {type(exc).__name__}: {exc}"
                ) from exc
            outputs.append((encoder, out))
        (encoder, out), (_, out_again) = outputs
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), dim) or not out.is_floating_point():
            shown = f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise ContractViolation(
                f"{where}: a batch of {len(x)} gave {shown}; expected a floating ({len(x)}, {dim}) tensor (dim={dim})"
            )
        if not bool(torch.isfinite(out).all()):
            raise ContractViolation(f"{where}: the output is not finite")
        if not torch.equal(out, out_again):
            raise ContractViolation(
                f"{where}: built and run twice under seed {seed}, it gave different outputs; initialise from "
                "torch's global generator, which the runner seeds"
            )
        target = F.normalize(torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)), dim=-1)
        (F.normalize(out, dim=-1) * target).sum().backward()
        trainable = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
        missing = [n for n, p in trainable if p.grad is None]
        if missing:
            raise ContractViolation(f"{where}: parameter {missing[0]!r} gets no gradient, so it never trains")
        if not all(bool(torch.isfinite(p.grad).all()) for _, p in trainable):
            raise ContractViolation(f"{where}: a parameter gradient is not finite")
        if trainable and not any(bool(p.grad.abs().sum() > 0) for _, p in trainable):
            raise ContractViolation(f"{where}: every parameter gradient is zero; the output does not depend on them")
        encoder.eval()
        with torch.no_grad():
            whole, part = encoder(x), encoder(x[:3])
        if not torch.allclose(whole[:3], part, atol=1e-5, rtol=1e-4):
            raise ContractViolation(
                f"{where}: in eval mode, row i of the output depends on the other rows of the batch; evaluation "
                "embeds in chunks, so an instance's embedding must not depend on its batch"
            )
    return [m.name for m in modalities]


# -- tasks ----------------------------------------------------------------------------------------------------------
def _load(component: Component, params: Mapping[str, Any]) -> TaskData:
    task = _create(component, params)
    load = getattr(task, "load", None)
    if not callable(load):
        raise ContractViolation(f"{_label(component)}: the factory returned {type(task).__name__}, which has no load()")
    try:
        data = load()
    except Exception as exc:
        raise ContractViolation(f"{_label(component)}: load() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, TaskData):
        raise ContractViolation(
            f"{_label(component)}: load() returned {type(data).__name__}; it must return "
            "pmrl_bench.components.TaskData(modalities, train, test, num_classes)"
        )
    return data


def check_task(
    component: Component, params: Mapping[str, Any] | None = None, registry: Registry | None = None,
    encoders: Mapping[str, str] | None = None,
) -> TaskData:
    """Loads a :class:`TaskData` that passes the runner's checks, identically twice; every modality has an encoder
    (the default for its kind, or one named in ``encoders``). Returns the data."""
    from pmrl_bench.runner.checks import check_task_data

    params = params or {}
    data = _load(component, params)
    try:
        check_task_data(component.name, data)
    except DataError as exc:
        raise ContractViolation(f"{_label(component)}: {exc}") from None
    again = _load(component, params)
    for split_name in ("train", "test"):
        first, second = getattr(data, split_name), getattr(again, split_name)
        for modality in data.modalities:
            if not np.array_equal(np.asarray(first.inputs[modality.name]), np.asarray(second.inputs.get(modality.name))):
                raise ContractViolation(
                    f"{_label(component)}: two loads with the same parameters gave different {split_name} inputs "
                    f"for modality {modality.name!r}; the data and split must be fixed by the task's parameters "
                    "(e.g. a seed parameter)"
                )
        if (first.labels is None) != (second.labels is None) or (
            first.labels is not None and not np.array_equal(first.labels, second.labels)
        ):
            raise ContractViolation(f"{_label(component)}: two loads gave different {split_name} labels")
    if data.train.labels is not None and data.num_classes is None:
        raise ContractViolation(f"{_label(component)}: the task has labels but num_classes is None")
    if registry is not None:
        for modality in data.modalities:
            if encoders and modality.name in encoders:
                continue
            try:
                registry.default_encoder_for(modality.kind)
            except UsageError as exc:
                raise ContractViolation(f"{_label(component)}: modality {modality.name!r}: {exc}") from None
    return data


# -- the real runner ------------------------------------------------------------------------------------------------
def _raw(value: Any) -> str:
    """A parameter as ``--set`` would spell it, so it goes through the same coercion as the CLI."""
    return value if isinstance(value, str) else json.dumps(value)


def run_one_step(
    registry: Registry,
    results_dir: str | Path,
    *,
    objective: str = REFERENCE_OBJECTIVE,
    task: str = TINY_TASK,
    objective_params: Mapping[str, Any] | None = None,
    task_params: Mapping[str, Any] | None = None,
    encoders: Mapping[str, str] | None = None,
    encoder_params: Mapping[str, Mapping[str, Any]] | None = None,
    steps: int = 1,
    batch_size: int = 8,
    dim: int = 16,
    seed: int = 0,
) -> RunResult:
    """Plan and execute one run through ``plan_sweep``/``execute_sweep`` (CPU, no progress bars) and return its
    stored result; a run that does not end ``ok`` is a :class:`ContractViolation` carrying the run's error."""
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.sweep import SweepConfig, collect_versions, execute_sweep, plan_sweep

    overrides: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, name, values in [("objective", objective, objective_params), ("task", task, task_params)] + [
        ("encoder", name, values) for name, values in (encoder_params or {}).items()
    ]:
        if values:
            overrides.setdefault((kind, name), {}).update({k: _raw(v) for k, v in values.items()})
    what = f"objective {objective!r} on task {task!r}"
    config = SweepConfig(
        objectives=[objective], tasks=[task], seeds=seed + 1,
        budget=Budget(steps=steps, batch_size=batch_size, dim=dim), overrides=overrides,
        encoders=dict(encoders or {}), device="cpu", progress=False, command="pmrl_bench.testing.run_one_step",
    )
    try:
        plan = plan_sweep(config, registry)
    except UsageError as exc:
        raise ContractViolation(f"the runner rejected {what} before training: {exc}") from None
    plan.specs = [spec for spec in plan.specs if spec.seed == seed]  # the planned seeds are 0..seed
    store = ResultStore(results_dir)
    summary = execute_sweep(plan, config, registry, store, collect_versions({}))
    result = store.read(summary.written[0])
    if result.status != "ok":
        raise ContractViolation(
            f"{steps} training step(s) of {what} through the runner ended {result.status!r}: {result.error}"
        )
    if not result.metrics.retrieval or not all(
        math.isfinite(v) for scores in result.metrics.retrieval.values() for v in scores.values()
    ):
        raise ContractViolation(f"the run of {what} ended ok but its retrieval metrics are missing or not finite")
    return result


# -- entry points ---------------------------------------------------------------------------------------------------
def check_entry_points(distribution: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The installed ``distribution`` has ``pmrl_bench`` entry points that load and register something.

    Returns ``{kind: [names]}`` of what it registered. Needs the package installed (``pip install -e .``).
    """
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ContractViolation(f"distribution {distribution!r} is not installed; run 'pip install -e .'") from None
    points = [ep for ep in dist.entry_points if ep.group == _plugins.ENTRY_POINT_GROUP]
    if not points:
        raise ContractViolation(
            f"distribution {distribution!r} declares no entry point in the {_plugins.ENTRY_POINT_GROUP!r} group; add "
            f"[project.entry-points.{_plugins.ENTRY_POINT_GROUP}] to its pyproject.toml and reinstall"
        )
    monkeypatch.setenv(_plugins.ENV_LOAD_PLUGINS, distribution)
    monkeypatch.setenv(_plugins.ENV_STRICT, "1")
    manager = _plugins.PluginManager()
    try:
        registry = manager.registry
    except UsageError as exc:
        raise ContractViolation(f"distribution {distribution!r}: {exc}") from None
    registered: dict[str, list[str]] = {}
    for component in registry.components():
        if component.distribution == distribution:
            registered.setdefault(component.kind, []).append(component.name)
    if not registered:
        raise ContractViolation(f"distribution {distribution!r} loaded but registered no objective, encoder or task")
    return registered


# -- the contract suite ---------------------------------------------------------------------------------------------
def _component(contract: Any, kind: str, name: str, register: Callable[..., str], manager: Any) -> Component:
    if not name:
        raise ContractViolation(f"{type(contract).__name__}: set the class attribute naming the {kind} to check")
    if contract.plugin is not None:
        register(contract.plugin)
    try:
        return manager.registry.get(kind, name)
    except UsageError as exc:
        raise ContractViolation(f"{type(contract).__name__}: {exc}") from None


class ObjectiveContract:
    """The contract every objective must meet. Subclass it in a test module::

        class TestMyObjective(ObjectiveContract):
            plugin = my_package.plugin      # the module (or object) with your @hookimpl functions
            objective = "my-objective"      # the name it registers
            params = {"temperature": 0.1}   # optional: parameters to build it with

    ``plugin = None`` checks an objective that is already registered (a built-in).
    """

    plugin: ClassVar[Any] = None
    objective: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    modalities: ClassVar[int] = 3
    batch_sizes: ClassVar[tuple[int, ...]] = (2, 8)
    dim: ClassVar[int] = 16

    @pytest.fixture
    def pmrl_component(self, pmrl_plugin_manager: Any, pmrl_register_plugin: Callable[..., str]) -> Component:
        return _component(self, "objective", self.objective, pmrl_register_plugin, pmrl_plugin_manager)

    def _shape(self) -> dict[str, Any]:
        return {"modalities": self.modalities, "batch_sizes": self.batch_sizes, "dim": self.dim}

    def test_parameters_have_json_defaults(self, pmrl_component: Component) -> None:
        check_parameters(pmrl_component, self.params)

    def test_forward_returns_scalar_loss_and_terms(self, pmrl_component: Component) -> None:
        check_objective_output(pmrl_component, self.params, **self._shape())

    def test_loss_is_finite(self, pmrl_component: Component) -> None:
        check_objective_finite(pmrl_component, self.params, **self._shape())

    def test_gradients_flow(self, pmrl_component: Component) -> None:
        check_objective_gradients(pmrl_component, self.params, **self._shape())

    def test_deterministic_under_a_seed(self, pmrl_component: Component) -> None:
        check_objective_determinism(pmrl_component, self.params, **self._shape())

    def test_native_score(self, pmrl_component: Component) -> None:
        if not check_objective_native_score(pmrl_component, self.params, modalities=self.modalities, dim=self.dim):
            pytest.skip("the objective has no native_score")

    def test_one_step_through_the_runner(
        self, pmrl_component: Component, pmrl_plugin_manager: Any, tmp_path: Path
    ) -> None:
        run_one_step(
            pmrl_plugin_manager.registry, tmp_path / "results", objective=pmrl_component.name,
            objective_params=self.params, task_params={"modalities": self.modalities}, dim=self.dim,
        )


class EncoderContract:
    """The contract every encoder must meet, checked on the modalities of ``task`` whose kind it accepts::

        class TestMyEncoder(EncoderContract):
            plugin = my_package.plugin
            encoder = "my-encoder"
            task = "my-task"                # default: the tiny vector task of pmrl_bench.testing
            task_params = {"n_train": 64}
    """

    plugin: ClassVar[Any] = None
    encoder: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    task: ClassVar[str] = TINY_TASK
    task_params: ClassVar[dict[str, Any]] = {}
    dim: ClassVar[int] = 16

    @pytest.fixture
    def pmrl_component(self, pmrl_plugin_manager: Any, pmrl_register_plugin: Callable[..., str]) -> Component:
        return _component(self, "encoder", self.encoder, pmrl_register_plugin, pmrl_plugin_manager)

    def _data(self, manager: Any) -> TaskData:
        try:
            task = manager.registry.get("task", self.task)
        except UsageError as exc:
            raise ContractViolation(f"{type(self).__name__}: {exc}") from None
        return _load(task, self.task_params)

    def test_parameters_have_json_defaults(self, pmrl_component: Component) -> None:
        check_parameters(pmrl_component, self.params)

    def test_shapes_gradients_and_determinism(self, pmrl_component: Component, pmrl_plugin_manager: Any) -> None:
        check_encoder(pmrl_component, self._data(pmrl_plugin_manager), self.params, dim=self.dim)

    def test_one_step_through_the_runner(
        self, pmrl_component: Component, pmrl_plugin_manager: Any, tmp_path: Path
    ) -> None:
        data = self._data(pmrl_plugin_manager)
        kinds = tuple(pmrl_component.metadata.get("modality_kinds", ()))
        chosen = {m.name: pmrl_component.name for m in data.modalities if not kinds or m.kind in kinds}
        run_one_step(
            pmrl_plugin_manager.registry, tmp_path / "results", task=self.task, task_params=self.task_params,
            encoders=chosen, encoder_params={pmrl_component.name: self.params}, dim=self.dim,
        )


class TaskContract:
    """The contract every task must meet::

        class TestMyTask(TaskContract):
            plugin = my_package.plugin
            task = "my-task"
            params = {"n_train": 64}        # keep it small: the suite loads it a few times
            encoders = {}                   # modality -> encoder, for kinds without a default encoder
    """

    plugin: ClassVar[Any] = None
    task: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    encoders: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def pmrl_component(self, pmrl_plugin_manager: Any, pmrl_register_plugin: Callable[..., str]) -> Component:
        return _component(self, "task", self.task, pmrl_register_plugin, pmrl_plugin_manager)

    def test_parameters_have_json_defaults(self, pmrl_component: Component) -> None:
        check_parameters(pmrl_component, self.params)

    def test_loads_valid_deterministic_data(self, pmrl_component: Component, pmrl_plugin_manager: Any) -> None:
        check_task(pmrl_component, self.params, pmrl_plugin_manager.registry, self.encoders)

    def test_one_step_through_the_runner(
        self, pmrl_component: Component, pmrl_plugin_manager: Any, tmp_path: Path
    ) -> None:
        run_one_step(
            pmrl_plugin_manager.registry, tmp_path / "results", task=pmrl_component.name, task_params=self.params,
            encoders=self.encoders,
        )
