"""Markdown leaderboards, rebuilt from stored result files alone."""

from pmrl_bench.leaderboard.build import build_leaderboards, check_leaderboards, write_leaderboards

__all__ = ["build_leaderboards", "check_leaderboards", "write_leaderboards"]
