"""Invalid arguments raise the documented exception type with a message naming the problem.
Where torch raises RuntimeError, rnncore raises ValueError."""

import numpy as np
import pytest

import rnncore

I, H = 4, 5


# --- constructor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [-0.1, 1.5, True, "0.5", None])
def test_dropout_out_of_range_or_not_a_number(dropout):
    with pytest.raises(ValueError, match=r"dropout should be a number in range \[0, 1\]"):
        rnncore.RNN(I, H, num_layers=2, dropout=dropout)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        rnncore.RNN(I, H, num_layers=1, dropout=0.5)


@pytest.mark.parametrize("name", ["bias", "batch_first", "bidirectional"])
@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_flags_must_be_bool(name, value):
    with pytest.raises(TypeError, match=f"{name} should be of type bool"):
        rnncore.RNN(I, H, **{name: value})


@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize("value", [2.0, "3", True, None])
def test_sizes_must_be_int(name, value):
    kwargs = {**dict(input_size=I, hidden_size=H, num_layers=1), name: value}
    with pytest.raises(TypeError, match=name):
        rnncore.RNN(**kwargs)


@pytest.mark.parametrize("name", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize("value", [0, -1])
def test_sizes_must_be_positive(name, value):
    kwargs = {**dict(input_size=I, hidden_size=H, num_layers=1), name: value}
    with pytest.raises(ValueError, match=f"{name} must be greater than zero"):
        rnncore.RNN(**kwargs)


@pytest.mark.parametrize("nonlinearity", ["sigmoid", "Tanh", "", None])
def test_unknown_nonlinearity(nonlinearity):
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        rnncore.RNN(I, H, nonlinearity=nonlinearity)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.complex128, object])
def test_unsupported_dtype(dtype):
    with pytest.raises(TypeError):
        rnncore.RNN(I, H, dtype=dtype)


# --- forward -------------------------------------------------------------------------------------

def zeros(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize("shape", [(I,), (2, 3, 3, I), ()])
def test_input_rank(shape):
    with pytest.raises(ValueError, match=f"Expected input to be 2D or 3D, got {len(shape)}D"):
        rnncore.RNN(I, H)(zeros(*shape))


@pytest.mark.parametrize("shape", [(6, 3, I + 1), (6, I - 1)])
def test_input_size_mismatch(shape):
    with pytest.raises(ValueError, match=f"Expected {I}, got {shape[-1]}"):
        rnncore.RNN(I, H)(zeros(*shape))


def test_hx_rank_must_match_input_rank():
    rnn = rnncore.RNN(I, H)
    with pytest.raises(ValueError, match="hx should also be 3-D but got 2-D"):
        rnn(zeros(6, 3, I), zeros(1, H))
    with pytest.raises(ValueError, match="hx should also be 2-D but got 3-D"):
        rnn(zeros(6, I), zeros(1, 1, H))


@pytest.mark.parametrize("h_shape", [(2, 3, H), (4, 2, H), (4, 3, H + 1), (4, 3, 1)])
def test_hx_shape(h_shape):
    rnn = rnncore.RNN(I, H, num_layers=2, bidirectional=True, batch_first=True)
    with pytest.raises(ValueError, match=r"Expected hidden size \(4, 3, 5\)"):
        rnn(zeros(3, 6, I), zeros(*h_shape))


def test_hx_shape_unbatched():
    with pytest.raises(ValueError, match="Expected hidden size"):
        rnncore.RNN(I, H, num_layers=2)(zeros(6, I), zeros(2, H + 1))


@pytest.mark.parametrize("batch_first, shape", [(False, (0, 3, I)), (True, (3, 0, I)),
                                                (False, (0, I)), (True, (0, I))])
def test_empty_sequence(batch_first, shape):
    with pytest.raises(ValueError, match="Expected sequence length to be larger than 0"):
        rnncore.RNN(I, H, batch_first=batch_first)(zeros(*shape))


# Each of these would convert to float if asked (1.5+0j, 1.5 as an object, "1.5"): refuse them.
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, str])
def test_non_real_input(dtype):
    rnn = rnncore.RNN(I, H)
    with pytest.raises(TypeError):
        rnn(np.full((6, 3, I), 1.5).astype(dtype))
    with pytest.raises(TypeError):
        rnn(zeros(6, 3, I), np.full((1, 3, H), 1.5).astype(dtype))
    with pytest.raises(TypeError):
        rnn("abc")


# --- backward ------------------------------------------------------------------------------------

def test_backward_before_forward():
    with pytest.raises(RuntimeError):
        rnncore.RNN(I, H).backward(zeros(6, 3, H))


@pytest.mark.parametrize("batch_first", [False, True])
def test_grad_output_shape(batch_first):
    rnn = rnncore.RNN(I, H, bidirectional=True, batch_first=batch_first)
    output, _ = rnn(zeros(6, 3, I))
    n0, n1, DH = output.shape
    for wrong in [(n1, n0, DH), (n0, n1, H), (n0, DH), (1, n0, n1, DH)]:
        with pytest.raises(ValueError, match=r"(?i)expected.*got"):
            rnn.backward(zeros(*wrong))
    rnn.backward(zeros(*output.shape))  # the right shape is accepted


def test_grad_h_n_shape():
    rnn = rnncore.RNN(I, H, num_layers=2)
    output, h_n = rnn(zeros(6, 3, I))
    for wrong in [(1, 3, H), (2, 3, H + 1), (2, H), (2, 1, 3, H)]:
        with pytest.raises(ValueError, match=r"(?i)expected.*got"):
            rnn.backward(zeros(*output.shape), zeros(*wrong))
    rnn.backward(zeros(*output.shape), zeros(*h_n.shape))
