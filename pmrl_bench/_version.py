"""The package's version, in one place: results record it, and the plugin manager reports it."""

__version__ = "0.1.0"
