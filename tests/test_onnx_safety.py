"""A handed-in run's ``model.onnx`` is checked before ONNX Runtime opens it (digitlab.onnx_safety): a security audit
made one read a file beside the server through "external data" and one hang the server in an endless ``Loop``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.onnx_model import OnnxModel  # noqa: E402

from conftest import seven_png  # noqa: E402

CONTRACT = {"digitlab_contract": "1", "model_card_id": "cnn-mnist-handed0in000", "source_sha256": "ab" * 32,
            "image_shape": "[28, 28]", "pixel_max": "255", "classes": json.dumps(list(range(10))), "temperature": "1.0"}
IO = ([helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 784])],
      [helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
       helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])])


def _model(nodes, initializers=(), functions=()) -> bytes:
    graph = helper.make_graph(nodes, "handed-in", *IO, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], functions=list(functions))
    model.ir_version = 9
    for key, value in CONTRACT.items():
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def _reads(secret_name: str, length: int, sparse: bool = False) -> bytes:
    """The audit's model: probabilities made of the bytes of a file named as its weights' external data (``sparse``:
    as the values of a sparse Constant, which a reviewer found a list of places to look had missed)."""
    weights = TensorProto(name="W", data_type=TensorProto.UINT8, dims=[length], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", secret_name), ("offset", "0"), ("length", str(length))):
        weights.external_data.add(key=key, value=value)
    held = []
    if sparse:
        weights.name = ""
        indices = numpy_helper.from_array(np.arange(length, dtype=np.int64))
        held = [helper.make_node("Constant", [], ["W"], sparse_value=onnx.SparseTensorProto(
            values=weights, indices=indices, dims=[length]))]
    nodes = held + [helper.make_node("Cast", ["W"], ["w"], to=TensorProto.FLOAT),
             helper.make_node("Slice", ["w", "start", "end"], ["ten"]),
             helper.make_node("Mul", ["features", "zero"], ["nothing"]),
             helper.make_node("ReduceSum", ["nothing"], ["z"], keepdims=1),
             helper.make_node("Add", ["z", "ten"], ["probabilities"]),
             helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)]
    constants = [numpy_helper.from_array(np.array([0], np.int64), "start"),
                 numpy_helper.from_array(np.array([10], np.int64), "end"),
                 numpy_helper.from_array(np.float32(0), "zero")]
    return _model(nodes, ([] if sparse else [weights]) + constants)


def _loops() -> bytes:
    """A Loop with no trip count whose condition stays true: ONNX Runtime would run it forever."""
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])])
    nodes = [helper.make_node("Loop", ["", "true"], [], body=body),
             helper.make_node("Mul", ["features", "zero"], ["probabilities"]),
             helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)]
    return _model(nodes, [numpy_helper.from_array(np.array(True), "true"),
                          numpy_helper.from_array(np.float32(0), "zero")])


def test_an_onnx_file_with_external_data_a_loop_or_a_foreign_operator_is_refused_before_it_runs(tmp_path,
                                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)  # where ONNX Runtime looked for the external data of a graph given as bytes
    (tmp_path / "grades.csv").write_bytes(b"student,grade\nAda,B+\n" * 10)
    foreign = _model([helper.make_node("Steal", ["features"], ["probabilities"], domain="com.example"),
                      helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)])
    for data, said in [(_reads("grades.csv", 40), "weights are stored outside the file"),
                       (_reads("grades.csv", 40, sparse=True), "weights are stored outside the file"),  # a reviewer
                       (_loops(), "it holds a subgraph"),
                       (foreign, "operator Steal is from the domain 'com.example'"),
                       (b"\x00not onnx at all", "not an ONNX file")]:
        with pytest.raises(DigitlabError, match=said):
            OnnxModel(data, where="model.onnx")


def test_predict_refuses_a_handed_in_run_whose_onnx_reads_a_file_beside_it(tmp_path):
    """The whole path a teacher takes: `digitlab predict --model HANDED_IN picture` in a folder with a class's
    grades answers one line, exit 2, and no byte of the file."""
    secret = b"student,grade\nAda Lovelace,B+\n"
    (tmp_path / "grades.csv").write_bytes(secret * 4)
    run = tmp_path / "handed-in"
    run.mkdir()
    data = _reads("grades.csv", 40)
    (run / "model.onnx").write_bytes(data)
    card = {"model": "cnn", "dataset": "mnist", "image_shape": [28, 28], "pixel_max": 255,
            "id": CONTRACT["model_card_id"], "format": "safetensors", "file": "model.safetensors", "sha256": "ab" * 32,
            "params": {}, "classes": list(range(10)), "metrics": {"accuracy": 0.999}}
    (run / "model.json").write_text(json.dumps(card))
    (run / "model.onnx.json").write_text(json.dumps({**card, "format": "onnx", "file": "model.onnx", "size_bytes":
                                                      len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    (tmp_path / "seven.png").write_bytes(seven_png())
    result = subprocess.run([sys.executable, "-m", "digitlab", "predict", "--model", "handed-in", "seven.png",
                             "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "external data" in result.stderr, (result.stdout, result.stderr)
    assert "Ada" not in result.stdout + result.stderr and len(result.stderr.strip().splitlines()) == 1
