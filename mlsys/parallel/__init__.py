"""Parallel training on real processes, on ``mlsys.comm`` and the engine's own Tensors.

* :mod:`~mlsys.parallel.schedules`: pipeline schedules (GPipe, 1F1B, interleaved) as data, the
  same objects the simulators run;
* :mod:`~mlsys.parallel.mappings` and :mod:`~mlsys.parallel.tensor`: Megatron-style tensor
  parallelism (communication as differentiable operations; column/row-parallel layers, split
  heads, vocabulary-parallel embedding and loss);
* :mod:`~mlsys.parallel.pipeline`: pipeline stages as processes, driven by a schedule;
* :mod:`~mlsys.parallel.zero`: ZeRO stages 1 to 3;
* :mod:`~mlsys.parallel.layout`: tensor x data x pipeline grids of sub-groups (hybrids);
* :mod:`~mlsys.parallel.checkpoint`: checkpoint and restart after a rank dies;
* :mod:`~mlsys.parallel.profile`: a step measured with its parts, for the simulators;
* :mod:`~mlsys.parallel.gpt`: the small GPT they all train.
"""

from .checkpoint import Checkpointer, run_with_restarts
from .gpt import GPT, GPTConfig, markov_tokens, tensor_parallel
from .layout import Layout, average_gradients, layout
from .pipeline import Pipeline
from .schedules import PipelineSchedule, Slot
from .tensor import (
           ColumnParallelLinear,
           RowParallelLinear,
           VocabParallelEmbedding,
           vocab_parallel_cross_entropy,
)
from .zero import ZeroDataParallel

__all__ = ["PipelineSchedule", "Slot", "ColumnParallelLinear", "RowParallelLinear",
           "VocabParallelEmbedding", "vocab_parallel_cross_entropy", "Pipeline", "ZeroDataParallel",
           "Layout", "layout", "average_gradients", "Checkpointer",
           "run_with_restarts", "GPT", "GPTConfig", "markov_tokens", "tensor_parallel"]
