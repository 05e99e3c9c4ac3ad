"""Inference engines behind one small interface, chosen by name.

``prepare(onnx_path, config)`` builds an engine or session and returns a
:class:`~trtprune.backends.base.Runner`; the shared harness in
:mod:`trtprune.engine.timing` times ``runner.run``. TensorRT and CUDA are imported only
inside their own backend modules.
"""

from __future__ import annotations

from trtprune.backends.base import BACKENDS, BackendConfig, Runner, Sessions, get_backend, open_runner

__all__ = ["BACKENDS", "BackendConfig", "Runner", "Sessions", "get_backend", "open_runner"]
