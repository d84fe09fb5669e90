"""A pmrl-bench plugin to copy: an objective, an encoder and a task, each minimal but real."""

__version__ = "0.1.0"
