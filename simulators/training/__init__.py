"""Parallel-training simulators: data, tensor and pipeline parallelism, parameter servers, ZeRO.

``simulate(model, parallel, cluster)`` costs one optimizer step of a GPT-style transformer on a
catalogued cluster and returns step time, throughput, achieved FLOP/s, memory per GPU and a
timeline (:class:`simulators.core.Recorder`). ``simulate_graph`` costs a traced ``mlsys`` program
instead, node by node from the primitive registry's cost rules.
"""

from mlsys.parallel.schedules import Slot, bubble_fraction, gpipe, interleaved, one_f_one_b, peak_in_flight

from .config import Cluster, ParallelConfig, TransformerConfig, from_dict
from .graph import GraphStep, simulate_graph, trace_gradients
from .hybrid import TrainingResult, simulate
from .memory import Memory, activation_bytes_per_layer, memory_per_gpu, model_states
from .parameter_server import ParameterServerConfig, ParameterServerResult, simulate_parameter_server
from .pipeline import PipelineRun, run_pipeline
from .tensor_parallel import LayerTiming, layer_timeline

__all__ = ["Cluster", "ParallelConfig", "TransformerConfig", "from_dict", "TrainingResult", "simulate",
           "GraphStep", "simulate_graph", "trace_gradients",
           "Memory", "activation_bytes_per_layer", "memory_per_gpu", "model_states",
           "ParameterServerConfig", "ParameterServerResult", "simulate_parameter_server",
           "PipelineRun", "run_pipeline", "Slot", "bubble_fraction", "gpipe", "interleaved",
           "one_f_one_b", "peak_in_flight", "LayerTiming", "layer_timeline"]
