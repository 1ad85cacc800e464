"""Tensor semantics that follow PyTorch: accumulation, modes, graph lifetime, clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mlsys


def test_python_scalars_become_float32_and_ints_int64():
    assert mlsys.tensor([1.0, 2.0]).dtype == np.float32
    assert mlsys.tensor([1, 2]).dtype == np.int64
    assert mlsys.tensor(np.zeros(2)).dtype == np.float64
    assert (mlsys.tensor([1.0]) * 2.5).dtype == np.float32


def test_gradients_accumulate_until_zeroed():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    x.grad = None
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_broadcast_gradient_is_reduced_to_the_input_shape():
    b = mlsys.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = mlsys.ones(4, 3)
    (x * b).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), [4.0, 4.0, 4.0])


def test_reused_tensor_gets_the_sum_of_its_paths():
    x = mlsys.tensor(2.0, requires_grad=True)
    y = x * x + x.exp()
    y.backward()
    assert x.grad.item() == pytest.approx(4 + np.exp(2.0))


def test_no_grad_records_nothing():
    x = mlsys.tensor([1.0], requires_grad=True)
    with mlsys.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert mlsys.is_grad_enabled()


def test_no_grad_as_decorator_and_enable_grad_inside():
    x = mlsys.tensor([1.0], requires_grad=True)

    @mlsys.no_grad()
    def f():
        with mlsys.enable_grad():
            inner = x * 2
        return x * 2, inner

    outer, inner = f()
    assert not outer.requires_grad and inner.requires_grad


def test_detach_cuts_the_graph():
    x = mlsys.tensor([1.0], requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_second_backward_needs_retain_graph():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_backward_on_non_scalar_needs_a_gradient():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar output.*shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\).*\(2,\)"):
        (x * 2).backward(np.ones(3))
    (x * 2).backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        mlsys.zeros(2, 3) + mlsys.zeros(4)
    with pytest.raises(ValueError, match=r"inner dimensions differ: \(2, 3\) @ \(4, 5\)"):
        mlsys.zeros(2, 3) @ mlsys.zeros(4, 5)
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\)"):
        mlsys.zeros(2, 3).reshape(4, 2)


def test_dtype_problems_are_reported():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        mlsys.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="same dtype.*float32 and float64"):
        mlsys.zeros(2, 2) @ mlsys.tensor(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="expected a floating-point tensor"):
        mlsys.tensor([1, 2]).exp()


def test_retain_grad_on_intermediate():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.data)


def test_post_accumulate_grad_hook_fires_once_per_backward():
    w = mlsys.tensor([1.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.item()))
    (w * 3).sum().backward()
    (w * 3).sum().backward()
    handle.remove()
    (w * 3).sum().backward()
    assert seen == [3.0, 6.0]


def test_indexing_forms():
    x = mlsys.arange(12).reshape(3, 4).float()
    assert x[1].tolist() == [4, 5, 6, 7]
    assert x[:, ::2].shape == (3, 2)
    assert x[x > 5].tolist() == [6, 7, 8, 9, 10, 11]
    assert x[[0, 2]].shape == (2, 4)
    assert x[mlsys.tensor([2, 2, 0])].tolist()[0] == [8, 9, 10, 11]
    with pytest.raises(IndexError, match=r"index .* is invalid for a tensor of shape \(3, 4\)"):
        x[5]


def test_numpy_refuses_tensors_that_require_grad():
    x = mlsys.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0]


def test_var_matches_numpy():
    data = np.random.default_rng(0).standard_normal((4, 5))
    x = mlsys.tensor(data)
    np.testing.assert_allclose(x.var(1).numpy(), data.var(1, ddof=1))
    np.testing.assert_allclose(x.var(correction=0).numpy(), data.var())


def test_tensor_of_objects_is_refused():
    with pytest.raises(TypeError, match="non-numeric"):
        mlsys.tensor(["a", object()])



def test_parameter_gradients_are_ready_last_layer_first():
    """Each parameter's hook fires as soon as its layer's backward is done, as DDP overlap needs."""
    from mlsys.tensor import add_observer, remove_observer

    class OpCounter:
        ops = 0

        def record(self, prim, inputs, params, out):
            self.ops += 1

    model = mlsys.models.mlp(in_features=4, hidden=8, classes=3, depth=2)
    loss = mlsys.nn.functional.cross_entropy(model(mlsys.randn(5, 4)), mlsys.tensor([0, 1, 2, 0, 1]))
    counter, ready = OpCounter(), []
    for name, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(lambda t, name=name: ready.append((name, counter.ops)))
    add_observer(counter)
    try:
        loss.backward()
    finally:
        remove_observer(counter)
    assert [name.split(".")[0] for name, _ in ready] == ["4", "4", "2", "2", "0", "0"]
    assert ready[1][1] < counter.ops / 2, "the last layer's gradients wait for the whole backward"


# -- dtypes: PyTorch's promotion ---------------------------------------------------------------

def test_integer_true_division_gives_float():
    out = mlsys.tensor([1, 3]) / 2
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [0.5, 1.5])
    assert (mlsys.tensor([1, 3]) / mlsys.tensor([2, 4])).dtype == np.float32
    assert (7 / mlsys.tensor([2])).item() == 3.5


def test_mean_of_integers_raises_as_in_pytorch():
    with pytest.raises(TypeError, match=r"mean: expected a floating-point tensor, got dtype int64"):
        mlsys.tensor([1, 2]).mean()
    assert mlsys.tensor([1, 2]).float().mean().item() == 1.5


@pytest.mark.parametrize("make,expected", [
    (lambda: mlsys.tensor([1, 2]) * 2.5, np.float32),            # a float number: default float
    (lambda: mlsys.tensor([1, 2]) * 2, np.int64),
    (lambda: mlsys.tensor(np.array([1, 2], np.int32)) + 5, np.int32),  # numbers take the tensor's
    (lambda: mlsys.tensor([True, False]) + 1, np.int64),
    (lambda: mlsys.tensor(np.ones(2, np.float32)) * np.float64(3.0), np.float32),
    (lambda: mlsys.tensor(np.ones(2, np.float32)) + mlsys.tensor(np.float64(1)), np.float32),
    (lambda: mlsys.tensor([1, 2]) + mlsys.tensor(np.float64(1)), np.float64),  # 0-d, higher kind
    (lambda: mlsys.tensor([1, 2]) * mlsys.tensor([1.5, 2.0]), np.float32),  # int64 x float32
    (lambda: mlsys.tensor(np.ones(2)) * mlsys.tensor(np.ones(2, np.float32)), np.float64),
    (lambda: mlsys.tensor([1, 2]).sum(), np.int64),
    (lambda: mlsys.tensor(np.array([1, 2], np.int32)).prod(), np.int64),
])
def test_dtype_promotion_follows_pytorch(make, expected):
    assert make().dtype == expected


def test_numpy_scalars_keep_their_dtype():
    assert mlsys.tensor(np.float64(2)).dtype == np.float64
    assert mlsys.tensor(np.int32(2)).dtype == np.int32
    assert mlsys.tensor(2.0).dtype == np.float32


def test_gradient_of_a_leaf_has_its_dtype():
    w = mlsys.tensor([1.0, 2.0], requires_grad=True)  # float32
    (w * mlsys.tensor(np.array([3.0, 4.0]))).sum().backward()  # a float64 partner
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 4.0])


# -- gradients at kinks, as PyTorch defines them ----------------------------------------------------

def test_pow_at_base_zero_has_no_nan():
    x = mlsys.tensor([0.0, 0.0, 2.0], requires_grad=True)
    e = mlsys.tensor([0.0, 2.0, 0.5], requires_grad=True)
    (x ** e).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 0.5 * 2.0 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(e.grad.numpy(), [0.0, 0.0, np.sqrt(2) * np.log(2)], rtol=1e-6)


def test_abs_at_zero_and_maximum_ties():
    x = mlsys.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 1.0])
    a = mlsys.tensor([1.0, 2.0], requires_grad=True)
    b = mlsys.tensor([1.0, 0.0], requires_grad=True)
    mlsys.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1.0])  # a tie splits the gradient
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0.0])


def test_where_keeps_an_infinite_gradient_out_of_the_other_branch():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    y = mlsys.tensor([3.0, 4.0], requires_grad=True)
    out = mlsys.where(mlsys.tensor([True, False]), x, y)
    out.backward(mlsys.tensor([np.inf, 1.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [np.inf, 0.0])
    np.testing.assert_array_equal(y.grad.numpy(), [0.0, 1.0])
    z = mlsys.tensor([-1.0, 2.0], requires_grad=True)
    z.relu().backward(mlsys.tensor([np.inf, 1.0]))
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 1.0])


def test_where_on_float16_values_whose_squares_overflow_warns_nothing():
    x = mlsys.tensor(np.array([300.0, -1000.0, 2.0], np.float16), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from numpy would print to a notebook's stderr
        x.relu().backward(mlsys.tensor(np.array([1000.0, 1000.0, 1000.0], np.float16)))
    np.testing.assert_array_equal(x.grad.numpy(), [1000.0, 0.0, 1000.0])


@pytest.mark.parametrize("shape,dim", [((0, 3), 1), ((2, 0), 1), ((0,), 0)])
def test_softmax_of_an_empty_tensor(shape, dim):
    x = mlsys.zeros(*shape, requires_grad=True)
    for fn in (x.softmax, x.log_softmax):
        out = fn(dim)
        assert out.shape == shape
        out.sum().backward()
        assert x.grad.shape == shape


# -- in-place edits and version counters ----------------------------------------------------------

def test_zero_of_a_saved_tensor_is_caught_at_backward():
    a = mlsys.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b * b  # saves b
    b.zero_()
    with pytest.raises(RuntimeError, match=r"modified in place after it was saved \(it is now at "
                                           r"version 1\)"):
        c.sum().backward()


def test_write_through_data_of_a_saved_tensor_is_caught_at_backward():
    a = mlsys.tensor([1.0, 2.0], requires_grad=True)
    b = a.exp()
    c = b * b
    b.data[0] = 5.0
    with pytest.raises(RuntimeError, match="gradient of mul, was modified in place"):
        c.sum().backward()
    d = mlsys.tensor([1.0, 2.0], requires_grad=True)
    e = d.tanh()  # saves its output
    e.data[...] *= 2
    with pytest.raises(RuntimeError, match="its output"):
        e.sum().backward()


def test_write_through_a_view_or_a_detached_tensor_is_caught():
    a = mlsys.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 1
    c = (b * b).sum()
    b.detach()[1] = 0.0  # shares b's memory and version counter
    with pytest.raises(RuntimeError, match="modified in place"):
        c.backward()
    x = mlsys.tensor([1.0, 2.0, 3.0], requires_grad=True) * 1
    y = (x * x).sum()
    x.reshape(3, 1).data[0, 0] = 7.0
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
    z = mlsys.tensor([1.0, 2.0], requires_grad=True).exp()
    w = (z * z).sum()
    np.multiply(z.data, 2, out=z.data)  # a ufunc writing into the data counts too
    with pytest.raises(RuntimeError, match="modified in place"):
        w.backward()


def test_reading_data_or_editing_after_backward_is_fine():
    a = mlsys.tensor([1.0, 2.0], requires_grad=True)
    b = a * 3
    c = (b * b).sum()
    assert b.data.sum() == 9.0 and repr(b.data) == "array([3., 6.], dtype=float32)"
    c.backward()
    b.zero_()
    np.testing.assert_allclose(a.grad.numpy(), [18.0, 36.0])


def test_in_place_ops_record_history_like_pytorch():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.add_(1).mul_(x)  # y = (e^x + 1) * x
    assert y.grad_fn == "mul" and y._version == 2
    y.sum().backward()
    expected = np.exp([1.0, 2.0]) * [1.0, 2.0] + np.exp([1.0, 2.0]) + 1
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    w = mlsys.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.add_(1)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w += 1
    with mlsys.no_grad():
        w.sub_(0.5)
    assert w.item() == 0.5 and w.is_leaf and w.requires_grad


def test_setitem_and_in_place_forms():
    x = mlsys.zeros(2, 3)
    x[0] = 1.0
    x[1, 1:] = mlsys.tensor([2.0, 3.0])
    x[mlsys.tensor([True, False])] += 1
    np.testing.assert_array_equal(x.numpy(), [[2, 2, 2], [0, 2, 3]])
    v = mlsys.tensor([5.0, 6.0, 7.0], requires_grad=True)
    y = mlsys.zeros(2, 3)
    y[1] = v * 2
    assert y.requires_grad
    (y * mlsys.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [2.0, 4.0, 6.0])
    i = mlsys.tensor([1, 2])
    with pytest.raises(TypeError, match="float32 result cannot be stored in place in this int64"):
        i.div_(2)
    with pytest.raises(RuntimeError, match="does not fit this tensor's shape"):
        mlsys.zeros(3).add_(mlsys.zeros(2, 3))


def test_in_place_on_a_view_of_a_graph_tensor_is_refused():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True) * 1
    with pytest.raises(RuntimeError, match="view .* is not supported"):
        x[0:1].mul_(2)


# -- the rest of the API a PyTorch user reaches for ------------------------------------------------

def test_max_and_min_along_a_dim_return_values_and_indices():
    x = mlsys.tensor([[1.0, 5.0, 5.0], [7.0, 2.0, 0.0]], requires_grad=True)
    values, indices = x.max(1)
    np.testing.assert_array_equal(values.data, [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    values.sum().backward()  # the gradient goes to the index, not shared between ties
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    m = x.min(0, keepdim=True)
    assert m.values.shape == (1, 3) and m.indices.tolist() == [[0, 1, 1]]
    assert x.max().item() == 7.0 and x.argmin().item() == 5
    assert mlsys.tensor([1.0, np.nan]).max(0).indices.item() == 1  # NaN wins


def test_sort_topk_cumsum_gather_split_chunk():
    x = mlsys.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 5.0]])
    s = x.sort(1, descending=True)
    np.testing.assert_array_equal(s.values.numpy(), [[3, 2, 1], [5, 5, 0]])
    np.testing.assert_array_equal(s.indices.numpy(), [[0, 2, 1], [1, 2, 0]])  # stable
    top = x.topk(2, dim=1, largest=False)
    np.testing.assert_array_equal(top.values.numpy(), [[1, 2], [0, 5]])
    np.testing.assert_array_equal(x.cumsum(0).numpy(), [[3, 1, 2], [3, 6, 7]])
    np.testing.assert_array_equal(x.gather(1, mlsys.tensor([[2], [0]])).numpy(), [[2], [0]])
    assert [p.shape for p in mlsys.arange(7).split(3)] == [(3,), (3,), (1,)]
    assert [p.shape for p in mlsys.zeros(2, 5).chunk(2, dim=1)] == [(2, 3), (2, 2)]
    with pytest.raises(ValueError, match=r"topk: k must be an int in \[0, 3\]"):
        x.topk(4)
    with pytest.raises(IndexError, match="gather: index 3 is out of range for dimension 1 of size 3"):
        x.gather(1, mlsys.tensor([[3], [0]]))


def test_prod_std_clamp_masked_fill_t_dim():
    x = mlsys.tensor([[1.0, -2.0, 3.0], [4.0, 0.5, -6.0]])
    np.testing.assert_allclose(x.prod(1).numpy(), [-6.0, -12.0])
    np.testing.assert_allclose(x.std(1).numpy(), np.std(x.numpy(), axis=1, ddof=1), rtol=1e-6)
    assert np.isnan(mlsys.tensor([1.0]).std().item())  # no degrees of freedom left, as PyTorch
    np.testing.assert_array_equal(x.clamp(-1, 2).numpy(), [[1, -1, 2], [2, 0.5, -1]])
    np.testing.assert_array_equal(x.clamp(min=0).numpy(), [[1, 0, 3], [4, 0.5, 0]])
    filled = x.masked_fill(x < 0, 0.0)
    np.testing.assert_array_equal(filled.numpy(), [[1, 0, 3], [4, 0.5, 0]])
    assert mlsys.tensor([1, 2]).masked_fill(mlsys.tensor([True, False]), 9.7).dtype == np.int64
    assert x.t().shape == (3, 2) and x.dim() == 2 and mlsys.zeros(3).t().shape == (3,)
    with pytest.raises(ValueError, match="t\\(\\): expects a tensor with at most 2 dimensions"):
        mlsys.zeros(2, 2, 2).t()
    with pytest.raises(ValueError, match="clamp: give at least one of min and max"):
        x.clamp()


def test_clamp_gradient_passes_at_the_bounds():
    x = mlsys.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    x.clamp(-1, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0])


def test_clone_is_recorded_and_keeps_the_device():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    assert y.grad_fn == "copy" and y.data is not x.data
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_autograd_grad_returns_without_accumulating():
    x = mlsys.tensor([1.0, 2.0], requires_grad=True)
    unused = mlsys.tensor([1.0], requires_grad=True)
    y = (x * x).sum()
    (g,) = mlsys.autograd.grad(y, x, create_graph=True)
    assert x.grad is None and g.requires_grad
    np.testing.assert_array_equal(g.data, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="input 1 was not used"):
        mlsys.autograd.grad((x * 2).sum(), [x, unused])
    assert mlsys.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None


def test_tensors_copy_and_pickle_with_their_own_memory():
    import copy
    import pickle

    x = mlsys.tensor([1.0, 2.0])
    x.data[0] = 3.0
    for y in (copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        y.data[1] = 9.0  # its own memory: the original is untouched
        assert x.tolist() == [3.0, 2.0] and y.tolist() == [3.0, 9.0]
    assert type(pickle.loads(pickle.dumps(x.data))) is np.ndarray
