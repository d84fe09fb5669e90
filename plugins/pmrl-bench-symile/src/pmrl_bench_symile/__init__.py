"""Symile for pmrl-bench: the multilinear-inner-product contrastive loss and an XOR synergy task."""

__version__ = "0.1.0"
