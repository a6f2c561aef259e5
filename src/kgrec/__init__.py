"""kgrec: knowledge-graph-enhanced recommendation on one shared core."""

from kgrec.errors import ConfigError, DataError, KGRecError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "KGRecError", "__version__"]
