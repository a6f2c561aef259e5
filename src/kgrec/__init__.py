"""kgrec: knowledge-graph-enhanced recommendation on one shared core.

``kgrec.train(preset, **overrides)`` and ``kgrec.load(run_dir)`` (see :mod:`kgrec.api`) are
imported on first use, so ``import kgrec`` stays fast (no torch import).
"""

from kgrec.errors import ConfigError, DataError, KGRecError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "KGRecError", "Result", "__version__", "load", "train"]

_API = ("Result", "load", "train")


def __getattr__(name: str):
    if name in _API:
        from kgrec import api

        return getattr(api, name)
    raise AttributeError(f"module 'kgrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
