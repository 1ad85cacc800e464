"""Plain data between the grader and a learner's kernel: JSON with tagged arrays, never pickles.

The grader calls the learner's functions in a sandboxed kernel (see :mod:`.session`); arguments go
in and results come out in this format. It carries numbers, strings, lists, tuples, dicts, sets,
slices, numpy arrays, scalars and dtypes, and instances of an explicit list of library types
(dataclasses, named tuples and slots classes such as ``mlsys.graph.Graph`` or
``mlsys.comm.schedules.Step``, plus ``mlsys.Tensor`` with the graph that made it). Decoding builds
only those types, from validated fields, so whatever the learner's code returns, the grader holds
plain values that cannot change behaviour between two reads.

Objects are memoized: the second occurrence of an object is a reference to the first, so shared
structure survives the trip, and an object the grader sent comes back as the grader's own object
(``topological_order(root)[0] is root`` holds on both sides).

Only numpy and the standard library are imported at module level: this module runs in kernels.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["Codec", "WireError", "BUILTIN_TYPES", "dumps", "loads"]

#: Library types every lab may exchange (``module.QualName``); a lab adds its own in metadata.
BUILTIN_TYPES = ("mlsys.tensor.Tensor", "mlsys.ops.registry.Spec", "mlsys.ops.shape.Index",
                 "mlsys.graph.ir.Var",
                 "mlsys.graph.ir.Node", "mlsys.graph.ir.Fused", "mlsys.graph.ir.Graph",
                 "mlsys.comm.schedules.Step", "mlsys.comm.schedules.Schedule")
MAX_DEPTH = 200
_ARRAY_KINDS = "biufc"
_TENSOR = "mlsys.tensor.Tensor"


class WireError(ValueError):
    """Data that cannot be sent, or a message that does not decode to allowed values."""


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve(name: str) -> type:
    module, _, qualname = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError) as error:
        raise WireError(f"type {name} is not available: {error}") from None


class Codec:
    """Encodes and decodes the values of a session, keeping the object memo of both directions.

    ``types`` names the library classes allowed on the wire besides :data:`BUILTIN_TYPES`. Each
    side of a session keeps one codec for the whole session: an object is sent once and referred
    to afterwards, and objects decoded from a call's arguments are recognised in its result. The
    two sides number new objects apart (``side`` 0: even ids, 1: odd ids), and a message that
    fails to encode or decode leaves the memo as it was, so the sides never disagree.

    A message is ``{"objects": [...], "value": tree}``: every library object is defined once in
    ``objects``, after the objects it refers to, and referenced as ``{"$r": id}`` elsewhere, so a
    deep graph (a chain of a thousand tensors) needs no deep recursion on either side.
    """

    def __init__(self, types: Iterable[str] = (), side: int = 0) -> None:
        self.allowed = {*BUILTIN_TYPES, *types}
        self._classes: dict[str, type] = {}  # wire name -> class
        self._names: dict[type, str | None] = {}  # class -> wire name (None: not allowed)
        self._sent: dict[int, int] = {}   # id(object) -> wire id
        self._objects: dict[int, Any] = {}  # wire id -> object (keeps them alive, too)
        self._next = side
        self._staged_ids: dict[int, int] = {}
        self._staged_objects: dict[int, Any] = {}

    def _load(self) -> None:
        if not self._classes:
            for name in self.allowed:
                try:
                    self._classes[name] = _resolve(name)
                except WireError:  # a type of a package this process lacks
                    continue
            self._names = {cls: name for name, cls in self._classes.items()}

    def _type_name(self, kind: type) -> str | None:
        """The allowed name ``kind`` crosses under (found by identity, so a class that moved
        to another module keeps its name), or None."""
        self._load()
        return self._names.get(kind)

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, value: Any) -> dict:
        """``value`` as a JSON-able message; raises :class:`WireError` for anything not allowed."""
        try:
            table: list[dict] = []
            for obj, fields in self._post_order(value):
                key = self._next + 2 * len(table)
                entry = {"$o": key, "type": self._type_name(type(obj)),
                         "f": {k: self._value(v) for k, v in fields.items()}}
                self._staged_ids[id(obj)] = key
                self._staged_objects[key] = obj
                table.append(entry)
            message = {"objects": table, "value": self._value(value)}
            self._sent.update(self._staged_ids)
            self._objects.update(self._staged_objects)
            self._next += 2 * len(table)
            return message
        finally:
            self._staged_ids, self._staged_objects = {}, {}

    def _known(self, obj: Any) -> int | None:
        key = self._staged_ids.get(id(obj))
        return self._sent.get(id(obj)) if key is None else key

    def _post_order(self, value: Any) -> list[tuple[Any, dict]]:
        """The library objects reachable from ``value`` and not sent yet, with their fields, each
        after those it refers to (an explicit stack: no recursion, whatever the depth)."""
        order: list[tuple[Any, dict]] = []
        state: dict[int, bool] = {}  # id -> finished
        fields: dict[int, dict] = {}
        stack: list[tuple[Any, bool]] = [(o, False) for o in reversed(self._children(value))]
        while stack:
            obj, expanded = stack.pop()
            if expanded:
                state[id(obj)] = True
                order.append((obj, fields.pop(id(obj))))
                continue
            if id(obj) in state or id(obj) in self._sent:
                if state.get(id(obj)) is False:
                    raise WireError(f"a {type(obj).__name__} refers back to itself (cyclic data "
                                    f"cannot be sent)")
                continue
            state[id(obj)] = False
            fields[id(obj)] = self._fields(obj)
            stack.append((obj, True))
            stack += [(c, False) for c in reversed(self._children(fields[id(obj)]))]
        return order

    def _children(self, value: Any) -> list[Any]:
        """Library objects directly inside ``value`` (looking through containers, not objects)."""
        found, stack = [], [(value, 0)]
        while stack:
            item, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise WireError(f"data nested more than {MAX_DEPTH} levels deep")
            kind = type(item)
            if kind in (int, float, str, bool) or item is None or isinstance(item, np.ndarray):
                continue
            if kind in (list, tuple, set, frozenset):
                stack += [(v, depth + 1) for v in item]
            elif self._type_name(kind) is not None:
                found.append(item)
            elif kind is dict or isinstance(item, Mapping):
                stack += [(v, depth + 1) for kv in item.items() for v in kv]
        return found[::-1]

    def _fields(self, obj: Any) -> dict:
        if type(obj) is self._classes.get(_TENSOR):
            return _tensor_fields(obj)
        if dataclasses.is_dataclass(obj):
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        if isinstance(obj, tuple):  # a named tuple
            return dict(zip(type(obj)._fields, obj))
        return {k: getattr(obj, k) for k in _public_slots(type(obj))}

    def _value(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"data nested more than {MAX_DEPTH} levels deep")
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return value if math.isfinite(value) else {"$f": repr(value)}
        if kind is complex:
            return {"$c": [self._value(value.real), self._value(value.imag)]}
        if isinstance(value, np.ndarray):  # a subclass crosses as its plain data
            return _encode_array(np.asarray(value).view(np.ndarray))
        if isinstance(value, np.generic):
            return {"$ns": _encode_array(np.asarray(value))}
        if isinstance(value, np.dtype):
            return {"$dtype": _dtype_name(value)}
        if isinstance(value, type) and issubclass(value, np.generic):
            return {"$sctype": _dtype_name(np.dtype(value))}
        if kind is slice:
            return {"$slice": [self._value(v, depth + 1)
                               for v in (value.start, value.stop, value.step)]}
        if value is Ellipsis:
            return {"$ellipsis": True}
        name = self._type_name(kind)
        if name is not None:
            key = self._known(value)
            if key is None:
                raise WireError(f"a {name} was not put in the message's object table")
            return {"$r": key}
        if kind is list:
            return [self._value(v, depth + 1) for v in value]
        if kind is tuple:
            return {"$t": [self._value(v, depth + 1) for v in value]}
        if kind in (set, frozenset):
            return {"$set": [self._value(v, depth + 1) for v in value],
                    "frozen": kind is frozenset}
        if kind is dict or isinstance(value, Mapping):
            if all(type(k) is str and not k.startswith("$") for k in value):
                return {k: self._value(v, depth + 1) for k, v in value.items()}
            return {"$d": [[self._value(k, depth + 1), self._value(v, depth + 1)]
                           for k, v in value.items()]}
        raise WireError(f"cannot send a {_name(kind)}: only numbers, strings, lists, tuples, dicts, "
                        f"numpy arrays and the library's data types ({', '.join(sorted(self.allowed))})"
                        f" cross to the grader")

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, message: Any) -> Any:
        """The values a message describes; raises :class:`WireError` for anything malformed."""
        if type(message) is not dict or set(message) != {"objects", "value"}:
            raise WireError("a message must hold 'objects' and 'value'")
        try:
            for entry in _list(message["objects"]):
                if type(entry) is not dict or set(entry) != {"$o", "type", "f"}:
                    raise WireError("malformed object entry")
                self._decode_object(entry)
            value = self._decode(message["value"], 0)
            self._objects.update(self._staged_objects)
            self._sent.update(self._staged_ids)
            return value
        finally:
            self._staged_ids, self._staged_objects = {}, {}

    def _decode(self, tree: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"data nested more than {MAX_DEPTH} levels deep")
        if tree is None or type(tree) in (bool, int, float, str):
            return tree
        if type(tree) is list:
            return [self._decode(v, depth + 1) for v in tree]
        if type(tree) is not dict:
            raise WireError(f"unexpected {type(tree).__name__} in a message")
        if not any(k.startswith("$") for k in tree):
            return {k: self._decode(v, depth + 1) for k, v in tree.items()}
        try:
            return self._decode_tagged(tree, depth)
        except WireError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise WireError(f"malformed {sorted(tree)[0]} entry: {type(error).__name__}: "
                            f"{error}") from None

    def _decode_tagged(self, tree: dict, depth: int) -> Any:
        d = depth + 1
        if "$t" in tree:
            return tuple(self._decode(v, d) for v in _list(tree["$t"]))
        if "$d" in tree:
            return {self._decode(k, d): self._decode(v, d) for k, v in _list(tree["$d"])}
        if "$set" in tree:
            items = [self._decode(v, d) for v in _list(tree["$set"])]
            return frozenset(items) if tree.get("frozen") else set(items)
        if "$nd" in tree:
            return _decode_array(tree)
        if "$ns" in tree:
            return _decode_array(tree["$ns"])[()]
        if "$f" in tree:
            value = float(tree["$f"])
            if math.isfinite(value):
                raise WireError(f"$f carries a finite float {tree['$f']!r}")
            return value
        if "$c" in tree:
            re, im = (float(self._decode(v, d)) for v in _list(tree["$c"]))
            return complex(re, im)
        if "$dtype" in tree:
            return _dtype(tree["$dtype"])
        if "$sctype" in tree:
            return _dtype(tree["$sctype"]).type
        if "$slice" in tree:
            parts = [self._decode(v, d) for v in _list(tree["$slice"])]
            if len(parts) != 3 or any(p is not None and type(p) is not int for p in parts):
                raise WireError(f"a slice needs three ints or None, got {parts!r}")
            return slice(*parts)
        if "$ellipsis" in tree:
            return Ellipsis
        if "$r" in tree:
            key = tree["$r"]
            if type(key) is int and key in self._staged_objects:
                return self._staged_objects[key]
            if type(key) is not int or key not in self._objects:
                raise WireError(f"reference to unknown object {key!r}")
            return self._objects[key]
        raise WireError(f"unknown tag in {sorted(tree)!r}")

    def _decode_object(self, entry: dict) -> None:
        key, name, fields = entry["$o"], entry["type"], entry["f"]
        if type(key) is not int or key in self._objects or key in self._staged_objects or \
                key % 2 == self._next % 2:
            raise WireError(f"object id {key!r} is invalid or used twice")
        self._load()
        if name not in self._classes:
            raise WireError(f"type {name!r} may not cross to the grader")
        if type(fields) is not dict:
            raise WireError(f"the fields of a {name} must be a mapping")
        values = {k: self._decode(v, 0) for k, v in fields.items()}
        cls = self._classes[name]
        try:
            obj = _make_tensor(values) if cls is self._classes.get(_TENSOR) else \
                _construct(cls, name, values)
        except WireError:
            raise
        except Exception as error:  # the type's own validation rejects the values
            raise WireError(f"invalid {cls.__name__}: {type(error).__name__}: {error}") from None
        self._staged_objects[key] = obj
        self._staged_ids[id(obj)] = key


def _public_slots(cls: type) -> list[str]:
    """The constructor fields of a slots class: its public ``__slots__``."""
    slots = [s for k in cls.__mro__ for s in getattr(k, "__slots__", ())]
    return [s for s in slots if not s.startswith("_")]


def _list(value: Any) -> list:
    if type(value) is not list:
        raise WireError(f"expected a list, got {type(value).__name__}")
    return value


def _construct(cls: type, name: str, values: dict) -> Any:
    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls) if f.init}
    elif issubclass(cls, tuple):
        names = set(getattr(cls, "_fields", ()))
    else:
        names = set(_public_slots(cls))
    if set(values) - names:
        raise WireError(f"{name} has no field(s) {sorted(set(values) - names)}")
    return cls(**values)


def _dtype_name(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"arrays of dtype {dtype} cannot be sent (numbers and booleans only)")
    return dtype.newbyteorder("<").str if dtype.itemsize > 1 else dtype.str


def _dtype(name: Any) -> np.dtype:
    if type(name) is not str:
        raise WireError(f"a dtype must be named by a string, got {name!r}")
    try:
        dtype = np.dtype(name)
    except TypeError:
        raise WireError(f"unknown dtype {name!r}") from None
    _dtype_name(dtype)
    return dtype


def _encode_array(array: np.ndarray) -> dict:
    dtype = _dtype_name(array.dtype)
    data = np.ascontiguousarray(array, dtype=np.dtype(dtype)).tobytes()
    return {"$nd": base64.b64encode(data).decode("ascii"), "dtype": dtype,
            "shape": list(array.shape)}


def _decode_array(tree: Any) -> np.ndarray:
    if type(tree) is not dict or type(tree.get("$nd")) is not str:
        raise WireError("malformed array")
    dtype, shape = _dtype(tree.get("dtype")), tree.get("shape")
    if type(shape) is not list or any(type(n) is not int or n < 0 for n in shape):
        raise WireError(f"an array's shape must be a list of ints >= 0, got {shape!r}")
    data = base64.b64decode(tree["$nd"].encode("ascii"), validate=True)
    size = math.prod(shape)
    if len(data) != size * dtype.itemsize:
        raise WireError(f"array of shape {tuple(shape)} and dtype {dtype} needs "
                        f"{size * dtype.itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _tensor_fields(t: Any) -> dict:
    node = t._node
    return {"data": np.asarray(t.data), "requires_grad": bool(t.requires_grad),
            "node": None if node is None else {"prim": node.prim.name, "inputs": list(node.inputs),
                                               "params": dict(node.params)}}


def _make_tensor(values: dict) -> Any:
    from mlsys.ops.registry import PRIMITIVES
    from mlsys.tensor import Node, Tensor

    data, node = values.get("data"), values.get("node")
    if type(data) is not np.ndarray:
        raise WireError("a Tensor's data must be an array")
    t = Tensor(data, dtype=data.dtype)
    if node is not None:
        if type(node) is not dict or node.get("prim") not in PRIMITIVES:
            raise WireError(f"a Tensor's node must name a primitive, got {node!r:.100}")
        inputs, params = node.get("inputs"), node.get("params")
        if type(inputs) is not list or any(type(x) is not Tensor for x in inputs):
            raise WireError("a Tensor node's inputs must be Tensors")
        if type(params) is not dict:
            raise WireError("a Tensor node's params must be a mapping")
        t._node = Node(PRIMITIVES[node["prim"]], tuple(inputs), params)
    t.requires_grad = bool(values.get("requires_grad"))
    return t


def dumps(tree: Any) -> bytes:
    """One message as UTF-8 JSON (NaN never appears: non-finite floats are tagged)."""
    return json.dumps(tree, separators=(",", ":"), allow_nan=False).encode()


def loads(data: bytes) -> Any:
    """Parse one message; anything that is not plain JSON raises :class:`WireError`."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise WireError(f"a message that is not JSON: {type(error).__name__}") from None


def _no_constant(name: str) -> Any:
    raise WireError(f"non-standard JSON constant {name}")
