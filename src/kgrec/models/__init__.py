"""Models, picked by name from :data:`MODELS`."""

from kgrec.models import (
    bprmf,  # noqa: F401
    cfkg,  # noqa: F401
    cke,  # noqa: F401
    cofm,  # noqa: F401
    ctr_baselines,  # noqa: F401  (fm-ctr, cke-ctr)
    enmf,  # noqa: F401
    fm,  # noqa: F401
    hkrm,  # noqa: F401
    jnskr,  # noqa: F401
    kgat,  # noqa: F401
    ktup,  # noqa: F401
    mkr,  # noqa: F401  (registers the model)
    ncf,  # noqa: F401
    nfm,  # noqa: F401
    ripplenet,  # noqa: F401
    transe,  # noqa: F401
    transh,  # noqa: F401
    transr,  # noqa: F401
    tup,  # noqa: F401
    widedeep,  # noqa: F401
)
from kgrec.models.base import MODELS, Model, get_model_class, register_model

__all__ = ["MODELS", "Model", "get_model_class", "register_model"]
