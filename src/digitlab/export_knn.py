"""k-nearest neighbours as an ONNX graph, written out with ``onnx.helper``.

skl2onnx 1.20 exports ``weights="distance"`` with equal weights (onnx/sklearn-onnx#1214), so digitlab
writes the graph itself: scikit-learn's euclidean distances (``|x|² - 2 x·y + |y|²`` in float64),
``TopK``, the weights and the vote. :func:`digitlab.export.to_onnx` calls it for the ``knn`` model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from digitlab.card import ModelCard
from digitlab.errors import DigitlabError
from digitlab.onnx_model import INPUT, OUTPUTS

__all__ = ["knn_to_onnx"]


def knn_to_onnx(model: Any, card: ModelCard, n_features: int, opset: int) -> Any:
    """k-nearest neighbours as a graph: scikit-learn's euclidean distances, ``TopK``, its weights and vote.

    Distances are computed in float64 as ``|x|² - 2 x·y + |y|²`` (scikit-learn's own method); a
    neighbour at distance 0 takes all the weight of its row, as in scikit-learn. The graph holds the
    training images (float32, cast to float64 once when ONNX Runtime loads it).
    """
    from onnx import TensorProto, helper, numpy_helper

    metric = model.effective_metric_
    if metric != "euclidean" or model.weights not in ("uniform", "distance"):
        raise DigitlabError(f"{card.model}: only euclidean k-NN with uniform or distance weights converts to "
                            f"ONNX, not metric={metric!r}, weights={model.weights!r}")
    train = np.asarray(model._fit_X, dtype=np.float32)  # scikit-learn keeps the training rows here
    labels = np.asarray(model._y, dtype=np.int64)  # ...and their class indices here
    k, n_classes = int(model.n_neighbors), len(model.classes_)
    if train.ndim != 2 or labels.ndim != 1 or train.shape[1] != n_features or k > len(train):
        raise DigitlabError(f"{card.model}: the fitted k-NN's training data is not one label per row; cannot export it")
    train64 = train.astype(np.float64)
    F, I = TensorProto.FLOAT, TensorProto.INT64
    init = [
        numpy_helper.from_array(np.ascontiguousarray(train.T), "train_t"),
        numpy_helper.from_array(np.einsum("ij,ij->i", train64, train64), "train_sq"),
        numpy_helper.from_array(labels, "train_labels"),
        numpy_helper.from_array(np.asarray(model.classes_, dtype=np.int64), "classes"),
        numpy_helper.from_array(np.asarray([k], dtype=np.int64), "k"),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.asarray([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.asarray(-2.0), "minus_two"),
        numpy_helper.from_array(np.asarray(0.0), "zero"),
        numpy_helper.from_array(np.arange(n_classes, dtype=np.int64), "class_index"),
    ]
    nodes = _knn_nodes(weighted=model.weights == "distance")
    graph = helper.make_graph(
        nodes, "digitlab_knn", [helper.make_tensor_value_info(INPUT, F, ["batch", n_features])],
        [helper.make_tensor_value_info(OUTPUTS[0], I, ["batch"]),
         helper.make_tensor_value_info(OUTPUTS[1], F, ["batch", n_classes])],
        initializer=init,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8  # what ONNX Runtime ≥ 1.14 reads
    return proto


def _knn_nodes(*, weighted: bool) -> list:
    """The graph's nodes: squared distances to every training row, the ``k`` nearest, their (weighted) vote."""
    from onnx import TensorProto, helper

    D, F = TensorProto.DOUBLE, TensorProto.FLOAT
    node = helper.make_node
    nodes = [
        node("Cast", [INPUT], ["x"], to=D),
        node("Cast", ["train_t"], ["y_t"], to=D),
        node("MatMul", ["x", "y_t"], ["xy"]),
        node("Mul", ["x", "x"], ["x2"]),
        node("ReduceSum", ["x2", "axis1"], ["x_sq"], keepdims=1),
        node("Mul", ["xy", "minus_two"], ["m2xy"]),
        node("Add", ["m2xy", "x_sq"], ["d2a"]),
        node("Add", ["d2a", "train_sq"], ["d2b"]),
        node("Max", ["d2b", "zero"], ["d2"]),
        node("TopK", ["d2", "k"], ["near_d2", "near"], axis=-1, largest=0, sorted=1),
        node("Gather", ["train_labels", "near"], ["near_labels"], axis=0),
        node("Unsqueeze", ["near_labels", "axis2"], ["near_labels3"]),
        node("Equal", ["near_labels3", "class_index"], ["is_class"]),
        node("Cast", ["is_class"], ["votes"], to=D),  # one-hot: [batch, k, classes]
    ]
    if weighted:
        nodes += [
            node("Sqrt", ["near_d2"], ["dist"]),
            node("Equal", ["dist", "zero"], ["at_zero"]),
            node("Cast", ["at_zero"], ["at_zero_d"], to=D),
            node("ReduceMax", ["at_zero_d", "axis1"], ["row_has_zero"], keepdims=1),
            node("Cast", ["row_has_zero"], ["row_has_zero_b"], to=TensorProto.BOOL),
            node("Reciprocal", ["dist"], ["inverse"]),
            node("Where", ["row_has_zero_b", "at_zero_d", "inverse"], ["weights"]),
            node("Unsqueeze", ["weights", "axis2"], ["weights3"]),
            node("Mul", ["votes", "weights3"], ["weighted"]),
        ]
        votes = "weighted"
    else:
        votes = "votes"
    nodes += [
        node("ReduceSum", [votes, "axis1"], ["score"], keepdims=0),
        node("ReduceSum", ["score", "axis1"], ["total"], keepdims=1),
        node("Div", ["score", "total"], ["proba"]),
        node("Cast", ["proba"], [OUTPUTS[1]], to=F),
        node("ArgMax", ["proba"], ["best"], axis=1, keepdims=0),
        node("Gather", ["classes", "best"], [OUTPUTS[0]], axis=0),
    ]
    return nodes
