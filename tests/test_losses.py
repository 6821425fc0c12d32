"""rnncore.losses: values and gradients against torch (mean reduction), finite differences,
masks, numerical stability and argument errors."""

import numpy as np
import pytest

from model_helpers import numerical_gradient
from rnncore import losses

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(4, 3, 2), (5, 2), (3,)])
def test_mse_matches_torch(shape):
    torch = pytest.importorskip("torch")
    pred, target = RNG.normal(size=shape), RNG.normal(size=shape)
    loss, grad = losses.mse(pred, target)
    p = torch.tensor(pred, requires_grad=True)
    want = torch.nn.functional.mse_loss(p, torch.tensor(target))
    want.backward()
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, want.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", [(4, 3, 5), (6, 7), (5,)])
def test_cross_entropy_matches_torch(shape):
    torch = pytest.importorskip("torch")
    logits = RNG.normal(size=shape) * 3
    labels = RNG.integers(0, shape[-1], size=shape[:-1])
    loss, grad = losses.cross_entropy(logits, labels)
    z = torch.tensor(logits, requires_grad=True)
    # torch wants the class dim second: (N, C, d1...) -> move the last dim there.
    zt = z.reshape(1, shape[-1]) if z.ndim == 1 else z.movedim(-1, 1)
    lt = torch.tensor(labels).reshape(1) if z.ndim == 1 else torch.tensor(labels)
    want = torch.nn.functional.cross_entropy(zt, lt)
    want.backward()
    np.testing.assert_allclose(loss, want.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_gradients_match_finite_differences_with_masks():
    pred, target = RNG.normal(size=(4, 3, 2)), RNG.normal(size=(4, 3, 2))
    logits, labels = RNG.normal(size=(4, 3, 5)), RNG.integers(0, 5, size=(4, 3))
    mask = RNG.random((4, 3)) < 0.5
    mask[0, 0] = True
    for fn, a, b in ((losses.mse, pred, target), (losses.cross_entropy, logits, labels)):
        _, grad = fn(a, b, mask)
        numeric = numerical_gradient(lambda: fn(a, b, mask)[0], a)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9, err_msg=fn.__name__)
        assert not grad[~mask].any() and grad[mask].any()


def test_mask_equals_dropping_the_padded_steps():
    pred, target = RNG.normal(size=(5, 4, 3)), RNG.normal(size=(5, 4, 3))
    logits, labels = RNG.normal(size=(5, 4, 6)), RNG.integers(0, 6, size=(5, 4))
    mask = RNG.random((5, 4)) < 0.5
    labels_padded = np.where(mask, labels, -1)  # masked labels may hold a padding id
    np.testing.assert_allclose(losses.mse(pred, target, mask)[0],
                               losses.mse(pred[mask], target[mask])[0], rtol=1e-12)
    np.testing.assert_allclose(losses.cross_entropy(logits, labels_padded, mask)[0],
                               losses.cross_entropy(logits[mask], labels[mask])[0], rtol=1e-12)
    # A mask of only the leading (T) dim, and a full-shape mse mask.
    step_mask = np.array([True, True, False, True, False])
    np.testing.assert_allclose(losses.mse(pred, target, step_mask)[0],
                               losses.mse(pred[step_mask], target[step_mask])[0], rtol=1e-12)
    full = RNG.random(pred.shape) < 0.5
    np.testing.assert_allclose(losses.mse(pred, target, full)[0],
                               np.mean((pred[full] - target[full]) ** 2), rtol=1e-12)


def test_nothing_counted_gives_zero_not_nan():
    for fn, a, b in ((losses.mse, np.ones((2, 3)), np.zeros((2, 3))),
                     (losses.cross_entropy, np.ones((2, 3)), np.zeros(2, int))):
        loss, grad = fn(a, b, np.zeros(2, bool))
        assert loss == 0.0 and grad.shape == a.shape and not grad.any()


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-5e4, 5e4, 0.0]])
    loss, grad = losses.cross_entropy(logits, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, (0.0 + 1e5) / 2, rtol=1e-12)
    np.testing.assert_allclose(grad, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-12)


def test_float32_in_float32_out():
    pred = np.ones((2, 2), np.float32)
    assert losses.mse(pred, np.zeros((2, 2)))[1].dtype == np.float32
    assert losses.cross_entropy(pred, np.zeros(2, int))[1].dtype == np.float32
    assert losses.mse([[1, 2]], [[0, 0]])[1].dtype == np.float64  # lists and ints: float64


@pytest.mark.parametrize("call, error, match", [
    (lambda: losses.mse(np.zeros((2, 3)), np.zeros((3, 2))), ValueError, "same shape"),
    (lambda: losses.mse(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(3, bool)), ValueError,
     "mask: expected shape"),
    (lambda: losses.mse(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(2)), TypeError,
     "mask: expected a bool array"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.zeros(2)), TypeError,
     "labels must be integers"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.zeros(3, int)), ValueError,
     "logits must be labels' shape plus a class dim"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError,
     r"labels must lie in \[0, 3\), got 3"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([-1, 0])), ValueError,
     r"labels must lie in \[0, 3\), got -1"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
