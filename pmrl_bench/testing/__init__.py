"""A pytest plugin for authors of pmrl-bench plugins: fixtures and a reusable contract suite.

It is registered through the ``pytest11`` entry point, so it is active in every pytest session of an environment
where pmrl-bench is installed (with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, add ``-p pmrl_bench.testing``).

Fixtures (all isolated per test), in :mod:`pmrl_bench.testing.fixtures`:

* ``pmrl_plugin_manager``: a fresh plugin manager with the built-ins only (installed plugins are not loaded, and a
  plugin that fails to register fails the test), installed as the process-wide manager for the test.
* ``pmrl_register_plugin(plugin, name=None)``: register an in-process plugin (a module or an object with
  ``@hookimpl`` methods) on that manager; it is unregistered after the test.
* ``pmrl_tiny_task``: the :class:`~pmrl_bench.components.TaskData` of :class:`TinyTask` (three vector modalities).
* ``pmrl_default_encoders``: the default encoder of each of its modalities, as an ``nn.ModuleDict``.

The contract suite, one module per contract (:mod:`~pmrl_bench.testing.objective`,
:mod:`~pmrl_bench.testing.encoder`, :mod:`~pmrl_bench.testing.task`): subclass :class:`ObjectiveContract`,
:class:`EncoderContract` or :class:`TaskContract` in a ``test_*.py`` file and set ``plugin`` and the component's
name; every check is one test, and a broken component fails with a :class:`ContractViolation` that says what is
wrong. The ``check_*`` functions and :func:`run_one_step` (:mod:`~pmrl_bench.testing.runner`) are the same checks
for use outside those classes; :mod:`~pmrl_bench.testing.common` holds what the contracts share and
:mod:`~pmrl_bench.testing.helpers` the components the fixtures register.

torch is imported inside functions only: this package is loaded by every pytest session of the environment.
"""

from __future__ import annotations

from pmrl_bench.testing.common import ContractViolation, check_parameters, unit_embeddings
from pmrl_bench.testing.encoder import EncoderContract, check_encoder
from pmrl_bench.testing.helpers import REFERENCE_OBJECTIVE, TINY_TASK, TinyTask, default_encoders, reference_objective
from pmrl_bench.testing.objective import ObjectiveContract, check_objective
from pmrl_bench.testing.runner import check_entry_points, run_one_step
from pmrl_bench.testing.task import TaskContract, check_task, check_task_card

# pytest registers the fixtures it finds in a plugin module, so they are imported into this one.
from pmrl_bench.testing.fixtures import (  # noqa: F401
    pmrl_default_encoders, pmrl_plugin_manager, pmrl_register_plugin, pmrl_tiny_task,
)
from pmrl_bench.testing.search_space import check_search_space  # noqa: E402
from pmrl_bench.testing.modality_counts import check_objective_modality_counts  # noqa: E402

# The single objective checks stay importable from here, as before the package split (outside __all__).
from pmrl_bench.testing.objective import (  # noqa: F401
    build_objective, check_objective_determinism, check_objective_finite, check_objective_gradients,
    check_objective_native_score, check_objective_output,
)

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
    "check_objective_modality_counts",
    "check_objective",
    "check_parameters",
    "check_search_space",
    "check_task",
    "check_task_card",
    "default_encoders",
    "reference_objective",
    "run_one_step",
    "unit_embeddings",
]
