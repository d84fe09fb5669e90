"""Result files: one validated, versioned JSON file per (task, objective, parameters, seed) run."""

from pmrl_bench.results.schema import SCHEMA_VERSION, RunResult
from pmrl_bench.results.store import InvalidResult, ResultStore

__all__ = ["SCHEMA_VERSION", "InvalidResult", "ResultStore", "RunResult"]
