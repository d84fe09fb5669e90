"""The contract of ``supports_seed_batch``: a component that declares it gives every seed, when the seeds train as one
model (``run --seed-batch``), exactly what its own forward and backward give.

:func:`check_seed_batch` builds the component under three seeds, stacks their parameters and buffers as the runner
does, calls ``forward`` under ``torch.func.vmap`` (random draws refused) and compares each seed's output and
gradients with those of its own module. An undeclared component is not checked (it trains one seed at a time).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from pmrl_bench.components import supports_seed_batch
from pmrl_bench.testing.common import ContractViolation

SEEDS = (0, 1, 2)
TOLERANCE = 1e-4  # relative to the largest entry; vmapped kernels may sum in another order


def check_seed_batch(build: Callable[[int], Any], inputs: Callable[[int], Any], label: str) -> bool:
    """Check a declared ``supports_seed_batch``; False when the component does not declare it.

    ``build(seed)`` returns the component built as the runner builds it under that seed; ``inputs(seed)`` what its
    forward takes for that seed (a batch, or a mapping of embeddings). The output must be a tensor or an object
    with ``.loss`` and ``.terms``.
    """
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    modules = [build(seed) for seed in SEEDS]
    if not supports_seed_batch(modules[0]):
        return False
    params, buffers = stack_module_state(modules)
    per_seed = [_leaves_requiring_grad(inputs(seed)) for seed in SEEDS]
    stacked_inputs = _leaves_requiring_grad(torch.utils._pytree.tree_map(lambda *xs: torch.stack(xs), *per_seed))

    def forward(p: dict[str, Any], b: dict[str, Any], x: Any) -> Any:
        return _tensors(functional_call(modules[0], (p, b), (x,)))

    attributes = _tensor_attributes(modules[0])
    try:
        with warnings.catch_warnings():  # torch's note that an op lacks a batching rule: slower, same values
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
            together = vmap(forward, randomness="error")(params, buffers, stacked_inputs)
            _scalar(together).backward()
    except Exception as exc:  # noqa: BLE001 - whatever vmap refuses, the declaration is wrong
        raise ContractViolation(f"{label}: declares supports_seed_batch but its forward fails under torch.func.vmap: "
                                f"{type(exc).__name__}: {exc}") from None
    written = sorted(name for name, value in _tensor_attributes(modules[0]).items()
                     if attributes.get(name) is not value)
    if written:
        raise ContractViolation(f"{label}: declares supports_seed_batch but its forward writes the attribute(s) "
                                f"{', '.join(written)}, which under torch.func.vmap would hold every seed's values")
    for index, (module, x) in enumerate(zip(modules, per_seed)):
        alone = _tensors(module(x))
        _scalar(alone).backward()
        _compare(label, f"seed {SEEDS[index]}: output", torch.utils._pytree.tree_leaves(alone),
                 [leaf[index] for leaf in torch.utils._pytree.tree_leaves(together)])
        names = [name for name, p in module.named_parameters() if p.requires_grad and p.grad is not None]
        grads = [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]
        grads += [leaf.grad for leaf in torch.utils._pytree.tree_leaves(x) if leaf.grad is not None]
        stacked = [params[name].grad[index] for name in names]
        stacked += [leaf.grad[index] for leaf in torch.utils._pytree.tree_leaves(stacked_inputs)
                    if leaf.grad is not None]
        _compare(label, f"seed {SEEDS[index]}: gradient", grads, stacked)
    return True


def _leaves_requiring_grad(tree: Any) -> Any:
    """``tree`` with every floating tensor a fresh leaf that requires grad (parameter-free objectives included)."""
    import torch

    def leaf(x: Any) -> Any:
        return x.detach().clone().requires_grad_() if torch.is_tensor(x) and x.is_floating_point() else x

    return torch.utils._pytree.tree_map(leaf, tree)


def _tensor_attributes(module: Any) -> dict[str, Any]:
    """Tensors held as plain attributes of a module and its submodules (not parameters, not buffers)."""
    import torch

    return {f"{prefix}.{name}".lstrip("."): value for prefix, sub in module.named_modules()
            for name, value in vars(sub).items() if torch.is_tensor(value)}


def _tensors(output: Any) -> Any:
    """The output as a pytree of tensors: ``(loss, terms)`` for an objective, the tensor for an encoder."""
    if hasattr(output, "loss") and hasattr(output, "terms"):
        return output.loss, dict(output.terms)
    return output


def _scalar(output: Any) -> Any:
    """What the backward starts from: the loss of an objective, the summed features of an encoder."""
    import torch

    return torch.utils._pytree.tree_leaves(output)[0].float().sum()


def _compare(label: str, what: str, expected: Sequence[Any], got: Sequence[Any]) -> None:
    import torch

    if len(expected) != len(got):
        raise ContractViolation(f"{label}: under --seed-batch, {what}: {len(got)} tensors where its own module "
                                f"gives {len(expected)}")
    for one, batched in zip(expected, got):
        scale = max(1.0, float(one.detach().abs().max())) if one.numel() else 1.0
        if one.shape != batched.shape or not torch.allclose(one.detach().double(), batched.detach().double(),
                                                             rtol=0, atol=TOLERANCE * scale, equal_nan=True):
            raise ContractViolation(f"{label}: declares supports_seed_batch, but under torch.func.vmap {what} "
                                    "differs from its own module's; drop the declaration or remove what depends "
                                    "on the batch of seeds (random draws, attributes written in forward)")


def check_objective_seed_batch(component: Any, params: dict[str, Any] | None = None, *, modalities: int = 3,
                               batch: int = 8, dim: int = 16) -> bool:
    """:func:`check_seed_batch` for an objective, on unit embeddings of its own for each seed."""
    from pmrl_bench.runner.train import seed_everything
    from pmrl_bench.testing.common import component_label, create_checked, unit_embeddings

    def build(seed: int) -> Any:
        seed_everything(seed)
        return create_checked(component, dict(params or {}))

    return check_seed_batch(build, lambda seed: unit_embeddings(modalities, batch, dim, seed + 100),
                            component_label(component))


def check_encoder_seed_batch(component: Any, data: Any, params: dict[str, Any] | None = None, *, dim: int = 16,
                             batch: int = 8) -> bool:
    """:func:`check_seed_batch` for an encoder, on each modality of ``data`` whose kind it accepts."""
    import torch

    from pmrl_bench.runner.train import seed_everything
    from pmrl_bench.testing.common import component_label

    kinds = tuple(component.metadata.get("modality_kinds", ()))
    declared = False
    for modality in [m for m in data.modalities if not kinds or m.kind in kinds]:
        def build(seed: int, modality: Any = modality) -> Any:
            seed_everything(seed)
            return component.create(modality=modality, dim=dim, **dict(params or {}))

        def inputs(seed: int, modality: Any = modality) -> Any:
            rows = data.train.inputs[modality.name][seed * batch:(seed + 1) * batch]
            return torch.as_tensor(rows)

        declared = check_seed_batch(build, inputs, f"{component_label(component)} (modality {modality.name!r})")
    return declared
