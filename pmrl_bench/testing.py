"""pytest plugin for plugin authors (registered through the ``pytest11`` entry point).

Fixtures and a contract suite for third-party objectives, encoders and tasks live here.
"""
