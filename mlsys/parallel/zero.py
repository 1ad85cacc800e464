"""ZeRO stages 1, 2 and 3: data parallelism whose model states are sharded over the group.

Rajbhandari et al. ("ZeRO: Memory Optimizations Toward Training Trillion Parameter Models",
SC'20) keep one replica's parameters, gradients and optimizer states split over the ``N_d``
data-parallel ranks instead of copied on each:

* **stage 1** (``P_os``): each rank keeps the optimizer states of its shard only. Gradients are
  computed in full, reduce-scattered (each rank receives the mean of its shard), the rank's
  optimizer updates its shard and the updated shards are all-gathered back into every rank's
  parameters.
* **stage 2** (``P_os+g``): the same, but each bucket of gradients is reduce-scattered as soon as
  backward has produced it and the full gradients are dropped: a rank keeps ``1/N_d`` of them.
* **stage 3** (``P_os+g+p``): a rank also keeps only its shard of the parameters. Each layer
  all-gathers its parameters when its forward runs and frees them after; backward gathers them
  again, recomputes the layer's forward (an eager tape that saved views of the gathered weights
  could not free them in between) and reduce-scatters its gradients.

Communication per step is a reduce-scatter and an all-gather of the model (``2 Psi``, as an
all-reduce) for stages 1 and 2, and ``3 Psi`` for stage 3 (two gathers and a reduce-scatter).
The optimizer is the engine's own (:mod:`mlsys.optim`) applied to the shards, so the update rule
is the same as data parallelism's and the training trajectory is the same
(``tests/parallel`` checks it against :class:`~mlsys.comm.DistributedDataParallel`).

Shards are contiguous pieces of flat buffers (one per gradient bucket, or per layer for stage
3) padded to a multiple of the group size; :meth:`ZeroDataParallel.state_bytes` reports what a
rank holds, which equals ``simulators.training.memory.model_states`` when nothing is padded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..autograd import enable_grad, grad, no_grad
from ..comm.ddp import DEFAULT_BUCKET_BYTES, make_buckets
from ..comm.group import ProcessGroup
from ..nn.module import Module, Parameter
from ..ops import Cost, Primitive, Spec
from ..optim import Optimizer
from ..tensor import Tensor, apply

__all__ = ["ZeroDataParallel", "StateBytes", "STAGES"]

STAGES = (1, 2, 3)
OptimizerFactory = Callable[[list[Parameter]], Optimizer]


@dataclass(frozen=True)
class StateBytes:
    """Bytes one rank holds for the model: parameters, gradients, optimizer states (the
    per-element ones: Adam's two moments; its step counters are a few bytes per shard)."""

    params: int
    grads: int
    optimizer: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer


class _Flat:
    """Some parameters laid out in one flat buffer padded to a multiple of the group size, and
    this rank's contiguous shard of it (a :class:`Parameter` the optimizer updates).

    With ``whole=True`` (stages 1, 2) the rank keeps the whole buffer, the parameters are views
    of it and so is the shard; otherwise (stage 3) it keeps the shard alone.
    """

    def __init__(self, params: Sequence[Parameter], group: ProcessGroup, whole: bool) -> None:
        self.params, self.group = list(params), group
        self.shapes = [p.shape for p in self.params]
        self.dtype = np.result_type(*[p.dtype for p in self.params])
        self.size = sum(p.data.size for p in self.params)
        self.part = -(-self.size // group.world_size)
        self.padding = self.part * group.world_size - self.size
        self.own = slice(group.rank * self.part, (group.rank + 1) * self.part)
        values = self.flatten([p.data for p in self.params])
        self.buffer: np.ndarray | None = None
        self.shard = Parameter(values[self.own].copy())
        if whole:
            self.hold(values)

    def flatten(self, arrays: Iterable[np.ndarray | None]) -> np.ndarray:
        """The arrays (None: zeros) in one padded buffer."""
        out = np.zeros(self.part * self.group.world_size, self.dtype)
        offset = 0
        for a, shape in zip(arrays, self.shapes):
            n = int(np.prod(shape, dtype=np.int64))
            if a is not None:
                out[offset: offset + n] = np.asarray(a).reshape(-1)
            offset += n
        return out

    def gathered(self) -> np.ndarray:
        """Every rank's shard, all-gathered: the whole padded buffer."""
        return self.group.all_gather(self.shard.data).reshape(-1)

    def reduce_scatter(self, grads: Iterable[np.ndarray | None]) -> np.ndarray:
        """This rank's shard of the gradients' mean over the group."""
        return self.group.reduce_scatter(self.flatten(grads), op="mean")

    def point_params_at(self, values: np.ndarray) -> None:
        """Make the parameters views of the flat ``values``."""
        offset = 0
        for p, shape in zip(self.params, self.shapes):
            n = int(np.prod(shape, dtype=np.int64))
            p.data = values[offset: offset + n].reshape(shape)
            offset += n

    def hold(self, values: np.ndarray) -> None:
        """Keep ``values`` as the whole buffer: parameters and shard become views of it."""
        self.buffer = values
        self.point_params_at(values)
        self.shard.data = values[self.own]


# -- stage 3: a layer whose parameters exist only while it computes ----------------------------

class _Layer:
    """A layer of a stage-3 model: its parameters are gathered for each forward and backward."""

    def __init__(self, module: Module, group: ProcessGroup) -> None:
        self.module, self.flat = module, _Flat(list(module.parameters()), group, whole=False)
        self.output: np.ndarray | None = None
        self.release()

    def gather(self) -> None:
        self.flat.point_params_at(self.flat.gathered())

    def release(self) -> None:
        for p in self.flat.params:
            p.data = np.empty((0,), p.dtype)

    def __call__(self, x: Tensor) -> Tensor:
        self.gather()
        with no_grad():
            self.output = self.module(x.detach()).data
        self.release()
        try:
            return apply(_LAYER, x, self.flat.shard, layer=self)
        finally:
            self.output = None

    def backward(self, g: Tensor, x: Tensor) -> tuple[Tensor | None, Tensor]:
        self.gather()
        floating = x.is_floating_point()
        with enable_grad():
            source = x.detach().requires_grad_() if floating else x.detach()
            out = self.module(source)
        wrt = [source] if floating else []
        grads = grad(out, wrt + self.flat.params, g, allow_unused=True)
        self.release()
        part = self.flat.reduce_scatter(None if q is None else q.data for q in grads[len(wrt):])
        return (grads[0] if floating else None), Tensor(part)  # the tape accumulates the part


_LAYER = Primitive(
    "zero3_layer",
    forward=lambda x, shard, *, layer: layer.output,
    shape=lambda x, shard, *, layer: Spec.of(layer.output),
    cost=lambda x, shard, *, out, layer: Cost(0, 3 * shard.nbytes * (layer.flat.group.world_size - 1)),
    vjp=lambda g, out, x, shard, *, layer: layer.backward(g, x),
    doc="One ZeRO-3 layer: all-gather its parameters, run it, free them (the VJP gathers again, "
        "recomputes, reduce-scatters the gradients).")


# -- the wrapper --------------------------------------------------------------------------------

class ZeroDataParallel(Module):
    """Train ``layers`` (a model's consecutive layers, run one after another) with ZeRO stage
    ``stage`` over ``group``; ``optimizer(params)`` makes the optimizer of this rank's shards.

    ``forward(x)`` runs the layers; call ``backward`` on the loss, then :meth:`step`. Every rank
    must build the same layers (one seed), as with data parallelism.
    """

    def __init__(self, layers: Sequence[Module], group: ProcessGroup, stage: int,
                 optimizer: OptimizerFactory, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"ZeRO: stage must be one of {STAGES}, got {stage!r}")
        self.group, self.stage = group, stage
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        self._layers = list(layers)
        params = [p for layer in layers for p in layer.parameters() if p.requires_grad]
        for p in params:  # every replica starts from rank 0's values, as with DDP
            group.broadcast(p.data, root=0)
        if stage == 3:
            self.units = [_Layer(layer, group) for layer in layers]
            self.flats = [u.flat for u in self.units]
            self._handles = []
        else:
            self.flats = [_Flat(bucket, group, whole=True)
                          for bucket in make_buckets(params, bucket_bytes)]
            self._flat_of = {id(p): i for i, f in enumerate(self.flats) for p in f.params}
            self._pending = [len(f.params) for f in self.flats]
            self._handles = ([p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
                             if stage == 2 else [])
        self.optimizer = optimizer([f.shard for f in self.flats])

    def forward(self, x: Tensor) -> Tensor:
        for layer in (self.units if self.stage == 3 else self._layers):
            x = layer(x)
        return x

    def _grad_ready(self, param: Parameter) -> None:
        index = self._flat_of[id(param)]
        self._pending[index] -= 1
        if not self._pending[index]:  # the bucket is complete: reduce it, drop the full grads
            flat = self.flats[index]
            self._accumulate(flat, flat.reduce_scatter(p.grad.data for p in flat.params))
            for p in flat.params:
                p.grad = None
            self._pending[index] = len(flat.params)

    @staticmethod
    def _accumulate(flat: _Flat, part: np.ndarray) -> None:
        shard = flat.shard
        shard.grad = Tensor(part) if shard.grad is None else Tensor(shard.grad.data + part)

    def step(self) -> None:
        """Reduce what is left of the gradients, update this rank's shards, and (stages 1, 2)
        all-gather the updated parameters."""
        if self.stage == 1:
            for flat in self.flats:
                self._accumulate(flat, flat.reduce_scatter(
                    None if p.grad is None else p.grad.data for p in flat.params))
        if self.stage == 2 and any(n != len(f.params) for n, f in zip(self._pending, self.flats)):
            raise RuntimeError("ZeRO stage 2: some parameters got no gradient this step; every "
                               "parameter must take part in each backward")
        self.optimizer.step()
        for flat in self.flats:
            flat.shard.grad = None  # used: the next step's gradients start from zero
            if self.stage < 3:
                flat.hold(flat.gathered())

    def zero_grad(self) -> None:
        for flat in self.flats:
            flat.shard.grad = None
            for p in flat.params:
                p.grad = None

    def full_parameters(self) -> list[np.ndarray]:
        """Every parameter's current value, whole, in the layers' order (gathered from the
        shards: every rank must call)."""
        found = {}
        for flat in self.flats:
            values = flat.gathered()
            offset = 0
            for p, shape in zip(flat.params, flat.shapes):
                n = int(np.prod(shape, dtype=np.int64))
                found[id(p)] = values[offset: offset + n].reshape(shape).copy()
                offset += n
        return [found[id(p)] for layer in self._layers for p in layer.parameters()
                if id(p) in found]

    def state_bytes(self) -> StateBytes:
        """What this rank holds now for the model. Measured after a step's backward (from the
        second step on, when the optimizer's state exists), it is the peak of the model states:
        whole gradients for stage 1, this rank's shard of them for stages 2 and 3."""
        shards = [f.shard for f in self.flats]
        if self.stage < 3:
            params = sum(f.buffer.nbytes for f in self.flats)
        else:
            params = sum(s.data.nbytes for s in shards)
        grads = sum(s.grad.data.nbytes for s in shards if s.grad is not None)
        grads += sum(p.grad.data.nbytes for f in self.flats for p in f.params if p.grad is not None)
        optimizer = sum(t.data.nbytes for s in shards
                        for t in self.optimizer.state.get(id(s), {}).values() if t.shape == s.shape)
        return StateBytes(params, grads, optimizer)

    def shard_state(self) -> dict:
        """This rank's part of a checkpoint: its shards and its optimizer's state."""
        return {"stage": self.stage, "shards": [np.array(f.shard.data, copy=True) for f in self.flats],
                "optimizer": self.optimizer.state_dict()}

    def load_shard_state(self, state: dict) -> None:
        """Resume from :meth:`shard_state` (every rank, with the same layers and group size)."""
        if state["stage"] != self.stage or len(state["shards"]) != len(self.flats):
            raise ValueError(f"ZeRO: a checkpoint of stage {state['stage']} with "
                             f"{len(state['shards'])} shards does not fit stage {self.stage} with "
                             f"{len(self.flats)}")
        for flat, values in zip(self.flats, state["shards"]):
            flat.shard.data = np.array(values, dtype=flat.dtype, copy=True)
            if self.stage < 3:
                flat.hold(flat.gathered())
        self.optimizer.load_state_dict(state["optimizer"])

    @property
    def padding(self) -> int:
        """Elements added so that every flat buffer splits evenly over the group."""
        return sum(f.padding for f in self.flats)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
