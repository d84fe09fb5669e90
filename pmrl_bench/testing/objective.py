"""The objective contract: what every objective must do, as check functions and as a test class to subclass.

Each ``check_objective_*`` function takes the component, its parameters and the input shape, and raises a
:class:`~pmrl_bench.testing.common.ContractViolation` saying what is wrong; :func:`check_objective` runs them all
and :class:`ObjectiveContract` makes each one a test.

An objective that declares a hyper-parameter search space is also checked by
:func:`~pmrl_bench.testing.search_space.check_search_space` (its own module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from pmrl_bench.registry import Component
from pmrl_bench.testing.common import (
    ContractViolation,
    check_parameters,
    component_label,
    contract_component,
    unit_embeddings,
)
from pmrl_bench.testing.objective_call import build_objective, call_objective
from pmrl_bench.testing.runner import run_one_step

if TYPE_CHECKING:
    import torch
    from torch import nn


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
        call_objective(component, objective, embeddings, case)


def check_objective_finite(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
    batch_sizes: Sequence[int] = (2, 8), dim: int = 16, seed: int = 0,
) -> None:
    """The loss and every term are finite for random and for perfectly aligned unit-norm inputs."""
    import torch

    objective = build_objective(component, params)
    for case, embeddings in _input_cases(modalities, batch_sizes, dim, seed):
        loss, terms = call_objective(component, objective, embeddings, case)
        if not torch.isfinite(loss):
            raise ContractViolation(
                f"{component_label(component)}: loss is not finite ({float(loss)}) for {case}; "
                "a loss must be finite for any unit-norm input (guard divisions, logs and square roots)"
            )
        for key, value in terms.items():
            if not torch.isfinite(value):
                raise ContractViolation(f"{component_label(component)}: term {key!r} is not finite "
                                        f"({float(value)}) for {case}")


def _loss_and_gradients(
    component: Component, objective: nn.Module, modalities: int, batch: int, dim: int, seed: int, case: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor | None], dict[str, torch.Tensor | None]]:
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    raw = {f"m{i}": torch.randn(batch, dim, generator=generator, requires_grad=True) for i in range(modalities)}
    embeddings = {m: F.normalize(x, dim=-1) for m, x in raw.items()}  # as the runner feeds it
    loss, _ = call_objective(component, objective, embeddings, case)
    if not loss.requires_grad:
        raise ContractViolation(
            f"{component_label(component)}: the loss carries no gradient (requires_grad is False) for {case}; "
            "it must be computed from the input embeddings with differentiable torch operations "
            "(no .detach(), .item(), numpy or torch.no_grad())"
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
                f"{component_label(component)}: the gradient with respect to modality {modality!r} "
                f"is not finite ({case})"
            )
        if grad is None or not bool(grad.abs().sum() > 0):
            raise ContractViolation(
                f"{component_label(component)}: no gradient reaches modality {modality!r} ({case}); "
                "the loss must depend on every modality, or that modality's encoder never trains"
            )
    for name, parameter in objective.named_parameters():
        if not parameter.requires_grad:
            continue
        grad = to_params[name]
        if grad is None:
            raise ContractViolation(
                f"{component_label(component)}: learnable parameter {name!r} gets no gradient, so it never trains; "
                "use it in the loss or make it a buffer (register_buffer)"
            )
        if not bool(torch.isfinite(grad).all()):
            raise ContractViolation(f"{component_label(component)}: the gradient of parameter {name!r} "
                                    f"is not finite ({case})")


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
            f"{component_label(component)}: two runs under seed {seed} gave losses {float(loss_a)!r} "
            f"and {float(loss_b)!r} "
            f"({case}); draw randomness from torch's (or numpy's / random's) global generator, which the runner "
            "seeds, never from an unseeded source"
        )
    for modality, grad in grads_a.items():
        other = grads_b[modality]
        if grad is not None and other is not None and not torch.allclose(grad, other, rtol=0, atol=0, equal_nan=True):
            raise ContractViolation(
                f"{component_label(component)}: two runs under seed {seed} gave different gradients "
                f"for modality {modality!r}"
            )


def check_objective_native_score(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3, dim: int = 16,
    seed: int = 0,
) -> bool:
    """If the objective has ``native_score(queries, gallery)`` (see ``pmrl_bench.evaluation.native``), it returns a
    finite ``(Nq, Ng)`` tensor for each of its ``native_directions``; if it declares ``native_score_symmetric``, a
    direction's reverse scores its transpose. Returns whether a native score exists."""
    import torch

    from pmrl_bench.evaluation.native import direction_key, native_directions

    objective = build_objective(component, params)
    native = getattr(objective, "native_score", None)
    if native is None:
        return False
    if not callable(native):
        raise ContractViolation(f"{component_label(component)}: native_score is {type(native).__name__}, not a method")
    names = [f"m{i}" for i in range(modalities)]
    try:
        directions = native_directions(objective, names)
    except Exception as exc:
        raise ContractViolation(f"{component_label(component)}: native_directions({names}) failed: {exc}") from exc
    embeddings = unit_embeddings(names, 7, dim, seed)

    def scored(queries: tuple[str, ...], gallery: tuple[str, ...], n_queries: int, n_gallery: int) -> Any:
        shown = (f"native_score for {direction_key(queries, gallery)} ({n_queries} queries, {n_gallery} candidates, "
                 f"dim {dim})")
        with torch.no_grad():
            try:
                return shown, native({m: embeddings[m][:n_queries] for m in queries},
                                     {m: embeddings[m][:n_gallery] for m in gallery})
            except Exception as exc:
                raise ContractViolation(f"{component_label(component)}: {shown} raised "
                                        f"{type(exc).__name__}: {exc}") from exc

    forward: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
    for queries, gallery in directions:
        shown, scores = scored(queries, gallery, 5, 7)
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (5, 7):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ContractViolation(
                f"{component_label(component)}: {shown} returned {got}; expected a (5, 7) tensor of scores, "
                "higher meaning more similar (queries and gallery are mappings {modality: (N, D) tensor})"
            )
        if not bool(torch.isfinite(scores).all()):
            raise ContractViolation(f"{component_label(component)}: {shown} returned non-finite scores")
        forward[(queries, gallery)] = scores
    symmetric = getattr(objective, "native_score_symmetric", False)
    if not isinstance(symmetric, bool):
        raise ContractViolation(f"{component_label(component)}: native_score_symmetric must be True or False, got "
                                f"{symmetric!r}")
    for queries, gallery in directions if symmetric else []:
        if (gallery, queries) not in forward:
            continue
        _, reverse = scored(gallery, queries, 7, 5)
        if (not isinstance(reverse, torch.Tensor) or tuple(reverse.shape) != (7, 5)
                or not torch.allclose(reverse, forward[(queries, gallery)].T, rtol=1e-5, atol=1e-6)):
            raise ContractViolation(
                f"{component_label(component)}: declares native_score_symmetric, but native_score for "
                f"{direction_key(gallery, queries)} is not the transpose of {direction_key(queries, gallery)}'s; "
                "set it to False (each direction is then scored on its own)"
            )
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
    from pmrl_bench.testing.modality_counts import check_objective_modality_counts
    from pmrl_bench.testing.search_space import check_search_space

    check_objective_modality_counts(component, params, **shape)

    check_search_space(component, params, modalities=modalities, batch=max(batch_sizes), dim=dim, seed=seed)
    after_step = getattr(build_objective(component, params), "after_optimizer_step", None)
    if after_step is not None and not callable(after_step):
        raise ContractViolation(f"{component_label(component)}: after_optimizer_step is not callable")


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
        return contract_component(self, "objective", self.objective, pmrl_register_plugin, pmrl_plugin_manager)

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

    def test_modality_counts(self, pmrl_component: Component) -> None:
        from pmrl_bench.testing.modality_counts import check_objective_modality_counts

        if check_objective_modality_counts(pmrl_component, self.params, **self._shape()) is None:
            pytest.skip("the objective declares no modality counts (it accepts any number, 2 or more)")

    def test_seed_batch_declaration(self, pmrl_component: Component) -> None:
        from pmrl_bench.testing.seed_batch import check_objective_seed_batch

        if not check_objective_seed_batch(pmrl_component, self.params, modalities=self.modalities,
                                          batch=max(self.batch_sizes), dim=self.dim):
            pytest.skip("the objective does not declare supports_seed_batch (its seeds train one at a time)")

    def test_search_space(self, pmrl_component: Component) -> None:
        from pmrl_bench.testing.search_space import check_search_space

        if not check_search_space(pmrl_component, self.params, modalities=self.modalities,
                                  batch=max(self.batch_sizes), dim=self.dim):
            pytest.skip("the objective declares no search space (tune searches the learning rate and weight decay)")

    def test_one_step_through_the_runner(
        self, pmrl_component: Component, pmrl_plugin_manager: Any, tmp_path: Path
    ) -> None:
        run_one_step(
            pmrl_plugin_manager.registry, tmp_path / "results", objective=pmrl_component.name,
            objective_params=self.params, task_params={"modalities": self.modalities}, dim=self.dim,
        )

