"""The CNN as an ONNX graph, through ``torch.onnx.export``: each BatchNorm that follows a convolution folded into it,
test-time augmentation as one batch of its five (or nine) views, softmax and argmax, a dynamic batch axis.
:func:`digitlab.export.to_onnx` calls it for the ``cnn`` model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from digitlab.card import ModelCard
from digitlab.errors import DigitlabError
from digitlab.export import OPSET, _first_line, _need, _quiet
from digitlab.onnx_model import INPUT, OUTPUTS

__all__ = ["cnn_to_onnx", "on_cpu"]


def cnn_to_onnx(model: Any, card: ModelCard) -> Any:
    """The CNN's ``predict_proba`` as a graph: BatchNorm folded where it can be, TTA as one batch, softmax, argmax."""
    _need("torch", "onnxscript")
    import torch
    import torch.nn.functional as F
    from torch import nn

    from digitlab.models import cnn_torch as ct

    side = model.image_shape_[0]
    n_features, n_classes = int(model.n_features_in_), len(model.classes_)
    net = ct.fuse_bn(model.module_).cpu().to(memory_format=torch.contiguous_format).eval()
    shifts = ct.tta_shifts(model.tta)

    class Graph(nn.Module):
        """Features in, (label, probabilities) out: what ``CNNClassifier.predict_proba`` computes."""

        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("classes", torch.as_tensor(np.asarray(model.classes_, dtype=np.int64)))

        def forward(self, features):
            if n_features < side * side:  # rows zero-padded to a square, as cnn_torch.as_images does
                features = F.pad(features, (0, side * side - n_features))
            x = features.reshape(-1, 1, side, side)
            if shifts:
                views = torch.cat([x] + [ct.shift(x, dy, dx) for dy, dx in shifts])
                proba = torch.softmax(self.net(views), dim=1).reshape(1 + len(shifts), -1, n_classes).mean(0)
            else:
                proba = torch.softmax(self.net(x), dim=1)
            return self.classes[proba.argmax(dim=1)], proba

    example = torch.zeros(2, n_features)  # 2, not 1: torch.export would fix a batch axis of size 1
    try:
        with _quiet(), torch.inference_mode(False), torch.no_grad():
            program = torch.onnx.export(
                Graph().eval(), (example,), input_names=[INPUT], output_names=list(OUTPUTS), opset_version=OPSET,
                dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), optimize=True, verbose=False,
            )
        return program.model_proto
    except Exception as exc:  # the exporter raises many kinds; each means "cannot convert"
        raise DigitlabError(f"{card.model}: torch.onnx.export cannot convert the CNN ({_first_line(exc)})") from None


def on_cpu(model: Any) -> Any:
    """The estimator as it predicts on the CPU: a CNN loaded onto a GPU predicts there in bf16, which is
    not what the float32 graph computes, so parity is checked against (and exported from) a CPU copy."""
    from digitlab.models.cnn import CNNClassifier

    if not isinstance(model, CNNClassifier) or model.device == "cpu":
        return model
    from digitlab.models import cnn_torch as ct

    if ct.resolve_device(model.device).type == "cpu":
        return model
    return CNNClassifier.from_tensors({**model.get_params(), "device": "cpu"}, model.export_tensors())
