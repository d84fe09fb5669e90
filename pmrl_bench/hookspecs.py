"""The plugin hooks: typed, documented, and the only way components reach pmrl-bench.

A plugin implements any of these with ``@pmrl_bench.hookimpl``. Each hook receives a ``register``
callback and calls it once per component; built-in components use the very same hooks.
Hook arguments are passed by keyword, so a later version may add arguments without breaking plugins
(pluggy lets an implementation accept fewer arguments than its spec).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import pluggy

PROJECT = "pmrl_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# A factory is a callable, or a lazy "module:attribute" string that is imported on first use,
# so `pmrl-bench list` stays fast and torch-free.
Factory = Callable[..., Any] | str


class RegisterObjective(Protocol):
    def __call__(
        self, name: str, factory: Factory, *, description: str = "", search_space: Mapping[str, Any] | None = None,
        modalities: Iterable[int] | None = None,
    ) -> None:
        """Register an objective: ``factory(**params)`` returns a ``torch.nn.Module`` (see ``components.Objective``).

        ``search_space``: ``{parameter: distribution}`` (``pmrl_bench.tuning.space``: ``Uniform``, ``LogUniform``,
        ``IntUniform``, ``Choice``) that ``pmrl-bench tune`` searches besides the learning rate and weight decay.
        ``modalities``: the numbers of modalities it accepts (e.g. ``(3,)`` or ``range(2, 9)``; None: any); a sweep
        reports it as not applicable to a task with another count (``pmrl_bench.modality_counts``).
        """


class RegisterEncoder(Protocol):
    def __call__(
        self,
        name: str,
        factory: Factory,
        *,
        modality_kinds: Sequence[str] = (),
        default_for: Sequence[str] = (),
        description: str = "",
    ) -> None:
        """Register an encoder: ``factory(modality=..., dim=..., **params)`` returns a ``torch.nn.Module``.

        ``modality_kinds``: the kinds it accepts (empty: any). ``default_for``: kinds for which the runner
        picks it when the user names no encoder (the first registration wins).
        """


class RegisterReporter(Protocol):
    def __call__(self, name: str, factory: Factory, *, description: str = "") -> None:
        """Register an experiment-tracking reporter: ``factory()`` returns a reporter
        (see ``pmrl_bench.tracking.Reporter``).

        ``pmrl-bench run --log NAME`` builds it once per sweep, before anything trains: raise
        ``pmrl_bench.errors.UsageError`` there when a dependency or setting is missing.
        """


class RegisterTask(Protocol):
    def __call__(self, name: str, factory: Factory, *, default_suite: bool = False, description: str = "") -> None:
        """Register a task: ``factory(**params)`` returns an object with ``load() -> TaskData`` and ``card() ->
        pmrl_bench.cards.DataCard`` (its data card; see ``components.Task``).

        ``default_suite``: run it when ``pmrl-bench run`` is given no ``--tasks``.
        """


@hookspec
def register_objectives(register: RegisterObjective) -> None:
    """Register training objectives.

    .. versionadded:: 0.1
    """


@hookspec
def register_encoders(register: RegisterEncoder) -> None:
    """Register encoders, the per-modality networks that map inputs to embeddings.

    .. versionadded:: 0.1
    """


@hookspec
def register_tasks(register: RegisterTask) -> None:
    """Register tasks: instance-paired multimodal data with a train and a test split.

    .. versionadded:: 0.1
    """


@hookspec
def register_reporters(register: RegisterReporter) -> None:
    """Register reporters: sinks for per-step training scalars and per-run results (``run --log NAME``).

    .. versionadded:: 0.1
    """
