"""The cluster launcher's options (``run``/``tune --launcher slurm|local``), their parsing into LauncherSettings, and
the command line each job runs: the one given, less these options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pmrl_bench.errors import UsageError

if TYPE_CHECKING:
    from pmrl_bench.launch import LauncherSettings

# Options that take one value each; --slurm-arg is repeatable. The count's flag is the command's own.
_VALUED = ("--launcher", "--slurm-partition", "--slurm-time", "--slurm-gpus", "--slurm-cpus")


def add_launcher_options(parser: argparse.ArgumentParser, count_option: str, count_help: str) -> None:
    group = parser.add_argument_group("cluster launcher (pip install 'pmrl-bench[cluster]'; see docs/scaling.md)")
    group.add_argument("--launcher", choices=["slurm", "local"],
                       help="submit the work as a job array through submitit and wait for it: slurm (sbatch), or "
                            "local (processes of this machine, no scheduler); then gather what the jobs wrote")
    group.add_argument(count_option, dest="launch_count", type=int, metavar="N", help=count_help)
    group.add_argument("--slurm-partition", metavar="NAME", help="SLURM partition of the jobs")
    group.add_argument("--slurm-time", metavar="TIME",
                       help="time limit of each job, as sbatch --time reads it: MINUTES, H:MM:SS or D-HH:MM:SS "
                            "(required with --launcher slurm)")
    group.add_argument("--slurm-gpus", type=int, metavar="N", help="GPUs of each job (SLURM --gpus-per-node)")
    group.add_argument("--slurm-cpus", type=int, metavar="N", help="CPUs of each job (SLURM --cpus-per-task)")
    group.add_argument("--slurm-arg", dest="slurm_args", action="append", default=[], metavar="KEY=VALUE",
                       help="another sbatch option for the jobs, e.g. account=lab or qos=high (repeatable)")


def launcher_settings(args: argparse.Namespace, count_option: str) -> LauncherSettings | None:
    """The launcher the command line asks for, checked; None without ``--launcher``."""
    values = ((count_option, args.launch_count), ("--slurm-partition", args.slurm_partition),
              ("--slurm-time", args.slurm_time), ("--slurm-gpus", args.slurm_gpus), ("--slurm-cpus", args.slurm_cpus),
              ("--slurm-arg", args.slurm_args or None))
    given = [option for option, value in values if value is not None]
    if args.launcher is None:
        if given:
            raise UsageError(f"{given[0]} needs --launcher slurm or --launcher local")
        return None
    if getattr(args, "shard", None) is not None:
        raise UsageError(f"--launcher submits every shard itself ({count_option} N): drop --shard, or drop --launcher "
                         "to run one shard here")
    if args.launch_count is None:
        raise UsageError(f"--launcher needs {count_option} N (the number of jobs, e.g. {count_option} 4)")
    from pmrl_bench.launch import LauncherSettings, parse_time

    extra = {}
    for item in args.slurm_args:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or key.strip().startswith("-"):
            raise UsageError(f"--slurm-arg {item!r} is not KEY=VALUE (an sbatch option without its dashes, e.g. "
                             "account=lab)")
        extra[key.strip()] = value
    return LauncherSettings(kind=args.launcher, count=args.launch_count, partition=args.slurm_partition,
                            time_min=parse_time(args.slurm_time) if args.slurm_time is not None else None,
                            gpus=args.slurm_gpus, cpus=args.slurm_cpus, extra=extra)


def job_argv(argv: Sequence[str], count_option: str) -> list[str]:
    """``argv`` without the launcher's options, each in any spelling argparse accepted (``--opt V``, ``--opt=V``,
    an unambiguous abbreviation), the rest in its order: what every job runs."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    for option in (*_VALUED, count_option):
        parser.add_argument(option)
    parser.add_argument("--slurm-arg", action="append")
    _, rest = parser.parse_known_args(list(argv))
    return rest
