"""A served prediction's whole answer in one ONNX Runtime call: probabilities, calibration, not-a-digit score.

After the model's forward pass, :func:`digitlab.predict.predict_images` applies the card's calibration
temperature (:func:`digitlab.calibrate.apply_temperature`) and scores the picture with the not-a-digit
detector (:meth:`digitlab.notdigit.NotDigitDetector.scores`). In NumPy that is some thirty operations on
arrays of ten numbers or a few hundred, each paying NumPy's call overhead: ≈ 0.1 ms of a served request,
half as much as the CNN's five forward passes. :func:`head_model` appends the same operations to the exported
graph, as a "head", so that one ``run`` answers the calibrated probabilities and the score. It is built in
memory when the server starts; the file on disk stays as exported.

The arithmetic is NumPy's, step by step and in the same precision: float64 for the temperature, the entropy
and the score; float32 for the detector's network. The probabilities agree with NumPy's to about 1e-15, the
scores to about 1e-7 (the network's float32 sums are added in another order), and a test holds both.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab.calibrate import EPS, TIE, apply_temperature
from digitlab.errors import DigitlabError
from digitlab.onnx_model import INPUT, OUTPUTS, OnnxModel

if TYPE_CHECKING:  # pragma: no cover
    from digitlab.notdigit import NotDigitDetector
    from digitlab.store import LoadedModel

__all__ = ["HEAD_OUTPUTS", "OnnxHeadModel", "check_headable", "head_model", "headed_graph"]

HEAD_OUTPUTS = ("head/probabilities", "head/nondigit")
"""The head's outputs: float64 calibrated probabilities ``[batch, 10]`` (column d is digit d) and float64
not-a-digit scores ``[batch]`` (1 for a row holding a value that is not finite or outside 0..1: no prepared picture)."""
MIN_OPSET = 18  # ReduceMax takes its axes as an input from opset 18 on
MAX_BYTES = 64 * 2**20
"""Larger graphs (a k-NN holds its whole training set) get no head: they spend far longer than the head saves
on each prediction, and rebuilding one would briefly hold it three times over."""


class OnnxHeadModel(OnnxModel):
    """An :class:`~digitlab.onnx_model.OnnxModel` whose graph also computes the calibration and the detector.

    ``predict_proba`` and ``predict`` work as on the plain model; :meth:`scored` answers both in one call.
    """

    def __init__(self, source: bytes, temperature: float, detector: NotDigitDetector, *, where: str):
        super().__init__(source, threads=1, where=where)
        self.head_temperature = temperature
        self.detector = detector

    def scored(self, features: np.ndarray, temperature: float,
               detector: NotDigitDetector | None) -> tuple[np.ndarray, np.ndarray] | None:
        """(calibrated probabilities N×10, not-a-digit scores N), both float64; None when ``temperature``
        and ``detector`` are not the ones in the graph (the caller computes them itself then)."""
        if detector is not self.detector or temperature != self.head_temperature or len(features) == 0:
            return None
        probabilities, scores = self._run(list(HEAD_OUTPUTS), self._rows(features))
        return probabilities, scores


def head_model(onnx: LoadedModel, temperature: float, detector: NotDigitDetector | None) -> OnnxHeadModel | None:
    """``onnx``'s model with the head appended (:class:`OnnxHeadModel`), or None where it cannot have one.

    None without a detector, for a model that does not know all ten digits, for a graph older than opset 18
    or over :data:`MAX_BYTES`, and when the package ``onnx`` (which writes the graph) is missing; the plain model
    serves then, as before.
    """
    model = onnx.model
    if detector is None or model.classes_.tolist() != list(range(10)) or onnx.path.stat().st_size > MAX_BYTES:
        return None
    try:
        import onnx as onnx_lib
    except ImportError:
        return None
    data = onnx.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != onnx.card.sha256:  # changed since it was loaded: leave it alone
        return None
    proto = _at_head_opset(onnx_lib.load_model_from_string(data))
    if proto is None:
        return None
    _append_head(proto, temperature, detector)
    headed = OnnxHeadModel(proto.SerializeToString(), temperature, detector, where=model.where)
    _check(headed, temperature, detector)
    return headed


def _opset(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _at_head_opset(proto: Any) -> Any | None:
    """``proto`` at opset :data:`MIN_OPSET` or later: as it is, or converted by ONNX's version converter (skl2onnx
    writes an MLP at opset 16, the lowest its operators need); None where the converter cannot."""
    if _opset(proto) >= MIN_OPSET:
        return proto
    from onnx import checker, version_converter

    try:
        converted = version_converter.convert_version(proto, MIN_OPSET)
        checker.check_model(converted)
    except Exception:  # noqa: BLE001 - the converter's many ways to refuse an operator it cannot carry forward
        return None
    return converted


def check_headable(loaded: LoadedModel, out: Path) -> None:
    """Refuse, in one line, a head (:func:`headed_graph`) for a run without calibration or detector, for a model
    not of the ten digits, or into ``out`` the run's own ``model.onnx``, which ``digitlab serve`` reads plain."""
    card = loaded.card
    if Path(out).resolve() == (loaded.path.parent / "model.onnx").resolve():
        raise DigitlabError("the run's model.onnx is the plain graph `digitlab serve` reads: give --with-head "
                            "another --out")
    if card.calibration is None or loaded.detector is None:
        raise DigitlabError(f"{card.id} has no calibration or no not-a-digit detector (saved by hand, or before "
                            "digitlab made them): export it without --with-head, or train it with `digitlab run`")
    if list(card.classes) != list(range(10)):
        raise DigitlabError(f"{card.id}: a head needs a model of the ten digits; export it without --with-head")


def headed_graph(proto: Any, loaded: LoadedModel) -> bytes:
    """``proto`` (a run's model as exported, :func:`check_headable`) with the head appended, as the bytes of a file
    of its own (``digitlab export --with-head``): a deployment without digitlab gets the calibrated probabilities
    and the not-a-digit score from ONNX Runtime alone, and its ``metadata_props`` say how to call the answer."""
    from onnx import helper

    card, detector = loaded.card, loaded.detector
    if (proto := _at_head_opset(old := proto)) is None:
        raise DigitlabError(f"{card.id}: a head needs an ONNX opset of at least {MIN_OPSET}, and the graph's "
                            f"{_opset(old)} could not be converted to it")
    temperature = float(card.calibration.temperature)
    _append_head(proto, temperature, detector)
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({
        "head_outputs": f"{HEAD_OUTPUTS[0]}: float64 [batch, 10], the calibrated probabilities (column d is digit d); "
                        f"{HEAD_OUTPUTS[1]}: float64 [batch], the not-a-digit score",
        "answer": f"not a digit when {HEAD_OUTPUTS[1]} > not_a_digit_threshold (it is 1 for a row with a value not "
                  f"finite or outside 0..1), or when every input is 0 (no ink); "
                  f"else unsure when the top calibrated probability < unsure_below - {TIE:g}; else that digit"
                  + ("" if detector.unlike_from is None else
                     f"; a digit or unsure answer with {HEAD_OUTPUTS[1]} >= might_not_be_a_digit_from might not be "
                     "one"),
        "temperature_applied": f"in the graph: {HEAD_OUTPUTS[0]} (the plain {OUTPUTS[1]} are before it)",
        "not_a_digit_threshold": repr(float(detector.threshold)),
    })
    if detector.unlike_from is not None:
        props["might_not_be_a_digit_from"] = repr(float(detector.unlike_from))
    helper.set_model_props(proto, props)
    data = proto.SerializeToString()
    _check(OnnxHeadModel(data, temperature, detector, where=f"{card.model} export"), temperature, detector)
    return data


def _check(headed: OnnxHeadModel, temperature: float, detector: NotDigitDetector) -> None:
    """Run the head once on a grey ramp and compare with NumPy's answer; a DigitlabError where they differ."""
    ramp = np.linspace(0.0, 1.0, headed.n_features_in_, dtype=np.float32)[None]
    probabilities, scores = headed.scored(ramp, temperature, detector)
    want = apply_temperature(headed.predict_proba(ramp), temperature)
    if not (np.allclose(probabilities, want, rtol=0, atol=1e-9)
            and np.allclose(scores, detector.scores(ramp, want), rtol=0, atol=1e-6)):
        raise DigitlabError(f"{headed.where}: the graph's calibration and detector do not answer as NumPy does")


def _append_head(proto: Any, temperature: float, detector: NotDigitDetector) -> None:
    """Append the calibration, the entropy, the detector's network and its stacked score to ``proto``'s graph."""
    from onnx import TensorProto, helper, numpy_helper

    graph, nodes, constants = proto.graph, [], {}

    def const(name: str, value: Any, dtype: Any = np.float64) -> str:
        constants[f"head/{name}"] = np.asarray(value, dtype=dtype)
        return f"head/{name}"

    def node(op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [f"head/{name}"], name=f"head/{name}", **attributes))
        return f"head/{name}"

    axis1 = const("axis1", [1], np.int64)
    p = node("Cast", [OUTPUTS[1]], "p", to=TensorProto.DOUBLE)
    if temperature != 1.0:  # apply_temperature: softmax(log(p + EPS) / T), its max subtracted first
        log_p = node("Log", [node("Add", [p, const("eps", EPS)], "p_eps")], "log_p")
        z = node("Div", [log_p, const("t", temperature)], "z")
        z = node("Sub", [z, node("ReduceMax", [z, axis1], "z_max", keepdims=1)], "z_shifted")
        e = node("Exp", [z], "exp_z")
        p = node("Div", [e, node("ReduceSum", [e, axis1], "exp_sum", keepdims=1)], "calibrated")
    nodes.append(helper.make_node("Identity", [p], [HEAD_OUTPUTS[0]], name=HEAD_OUTPUTS[0]))
    # entropy(p): 0 - sum(p * log(clip(p, 1e-12, 1)))
    log_p = node("Log", [node("Clip", [p, const("tiny", 1e-12), const("one", 1.0)], "p_clipped")], "log_clipped")
    p_log_p = node("ReduceSum", [node("Mul", [p, log_p], "p_log_p"), axis1], "sum_p_log_p", keepdims=0)
    entropy = node("Sub", [const("zero", 0.0), p_log_p], "entropy")
    hidden = INPUT  # the detector's network, in float32: ReLU layers, then one logit
    *layers, (w_out, b_out) = list(zip(detector.weights, detector.biases))
    for i, (w, b) in enumerate(layers):
        hidden = node("Relu", [node("Gemm", [hidden, const(f"w{i}", w, np.float32), const(f"b{i}", b, np.float32)],
                                    f"layer{i}")], f"hidden{i}")
    out = node("Gemm", [hidden, const("w_out", w_out, np.float32), const("b_out", b_out, np.float32)], "mlp_out")
    logit = node("Cast", [node("Gather", [out, const("first", 0, np.int64)], "mlp_logit32", axis=1)], "mlp_logit",
                 to=TensorProto.DOUBLE)
    a, b, c = (float(v) for v in detector.stack)  # sigmoid(a · logit + b · entropy + c), as 1 / (1 + exp(-x))
    x = node("Add", [node("Add", [node("Mul", [const("a", a), logit], "a_logit"),
                                  node("Mul", [const("b", b), entropy], "b_entropy")], "sum"), const("c", c)], "x")
    exp = node("Exp", [node("Neg", [x], "minus_x")], "exp_minus_x")
    score = node("Div", [const("one", 1.0), node("Add", [const("one", 1.0), exp], "one_plus")], "score")
    # a row that is no prepared picture (NaN, infinite, outside 0..1) scores 1, "not a digit": an engineer's NaN pixel
    # was answered "digit 0", and pixels scaled to -1..1 a sure digit, the score near 0 vouching for it
    outside = node("Or", [node("Less", [INPUT, const("zero32", 0.0, np.float32)], "below_0"),
                          node("Greater", [INPUT, const("one32", 1.0, np.float32)], "above_1")], "outside")
    bad = node("Cast", [node("Or", [node("IsNaN", [INPUT], "nan"), outside], "bad_pixel")], "bad_pixel32",
               to=TensorProto.FLOAT)
    bad_row = node("Cast", [node("ReduceMax", [bad, axis1], "bad_row32", keepdims=0)], "bad_row", to=TensorProto.BOOL)
    nodes.append(helper.make_node("Where", [bad_row, const("one", 1.0), score], [HEAD_OUTPUTS[1]],
                                  name=HEAD_OUTPUTS[1]))
    graph.node.extend(nodes)
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    graph.output.extend([helper.make_tensor_value_info(HEAD_OUTPUTS[0], TensorProto.DOUBLE, ["batch", 10]),
                         helper.make_tensor_value_info(HEAD_OUTPUTS[1], TensorProto.DOUBLE, ["batch"])])
