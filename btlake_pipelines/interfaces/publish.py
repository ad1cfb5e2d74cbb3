"""``publish``, where the Python API has always found it; the use case lives in
:mod:`btlake_pipelines.app.publish`."""

from btlake_pipelines.app.publish import publish

__all__ = ["publish"]
