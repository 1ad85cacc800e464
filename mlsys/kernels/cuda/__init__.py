"""The ``cuda`` device: numba-cuda kernels on a GPU, or in Numba's CUDA simulator without one.

* :mod:`.runtime` picks the GPU or the simulator; :mod:`.memory` holds device arrays, the
  caching allocator and the transfer counter (``memory_stats``, ``transfers``,
  ``count_transfers``); :mod:`.register` makes them the ``cuda`` device of Tensors;
* the engine's kernels: :mod:`.loops` (elementwise ops, reductions and fused groups generated from
  the registry), :mod:`.matmul`, :mod:`.nn`, :mod:`.indexing`;
* teaching kernels with host-array entry points: :mod:`.matmul`'s stages, :mod:`.reduce`,
  :mod:`.transpose`, :mod:`.elementwise`; :mod:`.gpucheck` measures them on a real GPU.
"""
