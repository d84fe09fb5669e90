"""Options shared by the commands that train (``run`` and ``tune``), and their parsing into a SweepConfig."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pmrl_bench.cli.output import PROG, say
from pmrl_bench.errors import UsageError
from pmrl_bench.redact import mask_secrets

if TYPE_CHECKING:
    from pmrl_bench.registry import Registry
    from pmrl_bench.runner.sweep_plan import SweepConfig


def names(value: str) -> list[str]:
    """``"a, b,a"`` -> ``["a", "b"]``: a name given twice is one run, not two (first occurrence kept)."""
    return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


def shard(value: str):  # noqa: ANN202 - a runner.shard.Shard; imported lazily to keep --help fast
    from pmrl_bench.runner.shard import parse_shard

    return parse_shard(value)


def jobs(value: str) -> int | str:
    from pmrl_bench.runner.jobs import parse_jobs

    return parse_jobs(value)


def seed_batch(value: str) -> int | str:
    from pmrl_bench.runner.jobs import parse_seed_batch

    return parse_seed_batch(value)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """What defines the runs of a sweep or a study: names, budget, device, parameters, protocol."""
    parser.add_argument("--objectives", type=names, help="comma-separated objectives (default: every registered one)")
    parser.add_argument("--tasks", type=names, help="comma-separated tasks (default: the default suite)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (default 300)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    parser.add_argument("--dim", type=int, default=64, help="shared embedding dimension (default 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="result files directory (default results/)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KIND.NAME.KEY=VALUE",
                        help="a component parameter, e.g. objective.pmrl.tau1=0.05 (repeatable)")
    parser.add_argument("--encoder", dest="encoders", action="append", default=[], metavar="MODALITY=NAME",
                        help="encoder for one modality instead of its kind's default (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="encoders' autocast: auto = bf16 (fp16 if unsupported) on CUDA, fp32 on CPU "
                             "(default auto)")
    parser.add_argument("--probe", default="torch", choices=["torch", "sklearn"],
                        help="classification probes: torch (on the run's device) or scikit-learn, the reference "
                             "(default torch)")
    parser.add_argument("--jobs", type=jobs, default=1, metavar="N|auto",
                        help="train N runs (or trials) at once in worker processes; auto: one per GPU on CUDA, else "
                             "physical cores // --threads (default 1)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch intra-op threads of each run; results depend on it, so it stays the same whatever "
                             "--jobs is (default 1)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile each encoder's training step (on CUDA with CUDA graphs): fewer kernel "
                             "launches for small models; objectives stay eager; results match eager up to rounding")
    protocol = parser.add_argument_group("protocol: where the encoders start, and which state is evaluated")
    protocol.add_argument("--init", metavar="OBJECTIVE:STEPS",
                          help="warm start: train the encoders with OBJECTIVE for STEPS steps first (once per task and "
                               "seed, cached under RESULTS/_init), then every objective continues from those weights")
    protocol.add_argument("--init-lr", type=float, metavar="X", help="the init stage's learning rate (default: --lr)")
    protocol.add_argument("--init-set", dest="init_settings", action="append", default=[], metavar="KEY=VALUE",
                          help="a parameter of the init objective (repeatable)")
    protocol.add_argument("--init-checkpoint", type=Path, metavar="PATH",
                          help="start every objective from these encoder weights (a safetensors file, e.g. one of "
                               "RESULTS/_init)")
    protocol.add_argument("--select", dest="selection", default="last", choices=["last", "best"],
                          help="evaluate the last encoder state, or the best on the validation split by mean R@1, "
                               "checked every 25 steps (default last)")


def sweep_config(args: argparse.Namespace, argv: Sequence[str], registry: Registry) -> SweepConfig:
    """The SweepConfig that ``run`` and ``tune`` share, from their common options."""
    from pmrl_bench.params import parse_set_options
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.sweep_plan import SweepConfig

    encoders = {}
    for item in args.encoders:
        modality, sep, name = item.partition("=")
        if not sep or not modality or not name:
            raise UsageError(f"--encoder {item!r} is not MODALITY=NAME (e.g. m0=linear)")
        registry.get("encoder", name)
        encoders[modality] = name
    registry.refuse_clashes("objective", args.objectives or ())
    registry.refuse_clashes("task", args.tasks or ())
    return SweepConfig(
        objectives=args.objectives if args.objectives is not None else defaults(registry, "objective", "--objectives"),
        tasks=args.tasks if args.tasks is not None else defaults(registry, "task", "--tasks"),
        seeds=getattr(args, "seeds", 1),
        budget=Budget(steps=args.steps, batch_size=args.batch_size, lr=args.lr, dim=args.dim),
        overrides=parse_set_options(args.settings),
        encoders=encoders,
        device=args.device,
        rerun=getattr(args, "rerun", False),
        progress=not args.no_progress,
        command=mask_secrets(" ".join([PROG, *map(shlex.quote, argv)])),  # stored in results and shown on pages
        precision=args.precision,
        shard=getattr(args, "shard", None),
        init=args.init,
        init_lr=args.init_lr,
        init_settings=key_values(args.init_settings, "--init-set"),
        init_checkpoint=args.init_checkpoint,
        selection=args.selection,
        probe=args.probe,
        jobs=args.jobs,
        threads=args.threads,
        compile=args.compile,
        seed_batch=getattr(args, "seed_batch", 1),
    )


def defaults(registry: Registry, kind: str, option: str) -> list[str]:
    """Every objective, or the default tasks, less those whose plugin code cannot be imported (with a warning)."""
    names = registry.names(kind) if kind == "objective" else registry.default_tasks()
    usable, problems = registry.importable(kind, names)
    for problem in problems:
        say(f"warning: {problem}; left out of this sweep (name it in {option} to make it an error)")
    return usable


def key_values(items: Sequence[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r} is not KEY=VALUE (e.g. temperature=0.05)")
        out[key.strip()] = value
    return out
