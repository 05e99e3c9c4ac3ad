"""The engine side: ONNX export at a precision, calibration, preparing candidates, the one timing harness, evaluation, ``bench``.

In: a module or an ONNX file and a backend config. Out: timed, evaluated or deployable models."""
