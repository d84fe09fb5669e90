"""Evaluation of trained encoders: cross-modal retrieval and classification probes."""
