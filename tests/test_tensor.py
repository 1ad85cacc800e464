"""Tensor semantics that follow PyTorch: accumulation, modes, graph lifetime, clear errors."""

from __future__ import annotations

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
