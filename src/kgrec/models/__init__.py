"""Models, picked by name from :data:`MODELS`."""

from kgrec.models import hkrm  # noqa: F401
from kgrec.models import mkr  # noqa: F401  (registers the model)
from kgrec.models import transe  # noqa: F401
from kgrec.models import transh  # noqa: F401
from kgrec.models import transr  # noqa: F401
from kgrec.models import tup  # noqa: F401
from kgrec.models import ktup  # noqa: F401
from kgrec.models import bprmf  # noqa: F401
from kgrec.models import fm  # noqa: F401
from kgrec.models import cfkg  # noqa: F401
from kgrec.models import cke  # noqa: F401
from kgrec.models import cofm  # noqa: F401
from kgrec.models import jnskr  # noqa: F401
from kgrec.models.base import MODELS, Model, get_model_class, register_model

__all__ = ["MODELS", "Model", "get_model_class", "register_model"]
