"""The wire format: the Open Inference Protocol (KServe "v2"), as Triton and KServe speak it.

A request is ``POST /v2/models/<name>/infer`` with a JSON body holding one input tensor::

    {"inputs": [{"name": "input", "shape": [n, 64], "datatype": "FP32", "data": [...]}]}

where ``data`` is the n*64 numbers, flat or nested. The reply holds the logits and the
predicted labels. Every malformed request is a :class:`BadRequest` with an HTTP status and a
one-line reason; nothing in this module touches a replica.
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["BadRequest", "parse_infer_request", "encode_infer_request", "encode_infer_response",
           "INPUT_NAME"]

INPUT_NAME = "input"


class BadRequest(ValueError):
    """A request the server refuses: ``status`` (4xx) and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def parse_infer_request(body: bytes, features: int, max_rows: int) -> np.ndarray:
    """The (n, ``features``) float32 rows of an inference request, 1 <= n <= ``max_rows``."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(400, f"malformed JSON: {error}") from None
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(400, 'expected a JSON object {"inputs": [ONE_TENSOR]}, got '
                              f"{_brief(payload)}")
    tensor = inputs[0]
    name = tensor.get("name", INPUT_NAME)
    if tensor.get("datatype") != "FP32":
        raise BadRequest(400, f"input {name!r}: datatype must be 'FP32', got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2 or not all(_is_int(d) for d in shape)
            or shape[1] != features or not 1 <= shape[0] <= max_rows):
        raise BadRequest(400, f"input {name!r}: expected shape [n, {features}] with 1 <= n <= "
                              f"{max_rows}, got {_brief(shape)}")
    try:
        raw = np.asarray(tensor.get("data"))
    except ValueError as error:  # ragged nesting
        raise BadRequest(400, f"input {name!r}: data is not a rectangular array ({error})") from None
    if raw.dtype.kind not in "iuf":
        raise BadRequest(400, f"input {name!r}: data must be numbers for FP32, got "
                              f"{_kind_name(raw)}")
    if raw.size != shape[0] * shape[1]:
        raise BadRequest(400, f"input {name!r}: shape {shape} needs {shape[0] * shape[1]} values, "
                              f"got {raw.size}")
    rows = raw.astype(np.float32).reshape(shape)
    if not np.isfinite(rows).all():
        raise BadRequest(400, f"input {name!r}: data must be finite, found NaN or infinity")
    return rows


def encode_infer_request(rows: np.ndarray) -> bytes:
    """The JSON body asking for predictions on ``rows`` (n, features)."""
    rows = np.asarray(rows, dtype=np.float32)
    return json.dumps({"inputs": [{"name": INPUT_NAME, "shape": list(rows.shape), "datatype": "FP32",
                                   "data": rows.ravel().tolist()}]}).encode()


def encode_infer_response(model: str, logits: np.ndarray) -> bytes:
    """The JSON reply: logits (n, classes) and the predicted label of each row."""
    return json.dumps({"model_name": model, "outputs": [
        {"name": "logits", "shape": list(logits.shape), "datatype": "FP32",
         "data": logits.ravel().tolist()},
        {"name": "label", "shape": [logits.shape[0]], "datatype": "INT64",
         "data": logits.argmax(1).tolist()}]}).encode()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind_name(array: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "O": "mixed or null values"}.get(array.dtype.kind,
                                                                           str(array.dtype))


def _brief(value: object, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
