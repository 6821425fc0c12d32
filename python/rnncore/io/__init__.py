"""rnncore's input and output: model files (`serialization`), torch modules (`torch`) and Keras
weights (`keras`). Their public face is methods of the classes: ``RNNModel.save`` and ``load``,
``RNN.from_torch`` and ``to_torch``, ``RNNModel.from_torch`` and ``to_torch``,
``RNN.from_keras_weights``. Importing this package registers their code with the classes
(rnncore/_registry.py). The ONNX export, a public module of its own, is rnncore.onnx.
"""

from . import keras, serialization, torch

__all__ = ["keras", "serialization", "torch"]
