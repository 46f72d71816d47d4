"""The package version, in the lowest room so that any module can record it without
importing :mod:`searchkd` itself (whose lazy API export sits above everything)."""

__version__ = "0.1.0"
