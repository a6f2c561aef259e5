"""``kgrec serve``: trained runs answering over HTTP (:func:`create_app`), with a page at ``/``."""

from kgrec.serve.engine import Engine, NotFound, Unsupported

__all__ = ["Engine", "NotFound", "Unsupported", "create_app"]


def create_app(*args, **kwargs):
    """See :func:`kgrec.serve.app.create_app` (imported on use: FastAPI loads only here)."""
    from kgrec.serve.app import create_app as make

    return make(*args, **kwargs)
