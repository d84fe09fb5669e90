"""Reference baselines that are not training objectives (e.g. linear CCA): rows to compare against, computed
on a task's own train/test split with the same retrieval metrics."""
