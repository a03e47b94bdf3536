"""What an ONNX file must not hold before ONNX Runtime opens it: a run folder can be handed in by anyone.

A security audit built two ``model.onnx`` files, each with a card naming it, that a served run would answer through:
one whose weights were "external data" naming a file beside the server (ONNX Runtime read it in, and each answer's
probabilities gave away one byte of a class's grades), and one whose ``Loop`` never ended (the server answered no
one again). digitlab's exports have neither, so :func:`check_graph` refuses, in one line and before any session
is made:

- a tensor stored outside the file (external data), wherever it sits;
- a subgraph (the bodies of ``Loop``, ``Scan`` and ``If``, a training graph) or a model-local function;
- an operator outside ONNX's own domains (``ai.onnx``, ``ai.onnx.ml``).

What a graph of plain operators costs is not bounded: a chain of large matrix products still takes as long as its
author likes, each answer holding a worker. Serve only runs you trust, or export them again yourself.

The file is read with ONNX's generated protobuf module alone (25 ms), not the whole ``onnx`` package (0.6 s), so
the lean prediction path stays lean.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

from digitlab.errors import DigitlabError

DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


@functools.lru_cache(maxsize=1)
def _protos() -> Any:
    """ONNX's generated ``onnx_ml_pb2``, loaded by itself (importing ``onnx`` imports its whole library)."""
    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    where = f"{list(spec.submodule_search_locations)[0]}/onnx_ml_pb2.py"
    module_spec = importlib.util.spec_from_file_location("_digitlab_onnx_ml_pb2", where)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def check_graph(data: bytes, where: str) -> None:
    """Refuse in one line an ONNX file (its bytes) that holds what digitlab's exports never do (see the module)."""
    protos = _protos()
    if protos is None:  # no onnx installed: ONNX Runtime alone cannot be checked before it opens the file
        raise DigitlabError(f"{where}: checking an ONNX file needs the onnx package; run `pip install onnx`")
    model = protos.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and kin
        raise DigitlabError(f"{where}: not an ONNX file (it cannot be parsed)") from None
    why = "it defines its own functions" if len(model.functions) else _refused(model)
    if why:
        raise DigitlabError(f"{where}: refused: {why}, which digitlab's exports never do; export the run again with "
                            "`digitlab export` (do not run ONNX files from others)")


def _refused(model: Any) -> str | None:
    """Why ``model`` is refused, or None: every message in it is looked at, wherever it sits (a reviewer found
    external data in a sparse constant's values and a sparse initializer's indices that a list of places missed)."""
    for message in _every_message(model):
        kind = message.DESCRIPTOR.name
        if kind == "TensorProto" and (message.data_location == _EXTERNAL or len(message.external_data)):
            return "its weights are stored outside the file (external data)"
        if kind == "GraphProto" and message is not model.graph:
            return "it holds a subgraph (a Loop's, a Scan's or an If's body, or a training graph)"
        if kind == "NodeProto" and message.domain not in DOMAINS:
            return f"its operator {message.op_type} is from the domain {message.domain!r}"
    return None


def _every_message(message: Any) -> Any:
    """``message`` and every message inside it, depth first."""
    yield message
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            for item in ([value] if hasattr(value, "DESCRIPTOR") else value):  # one message, or a repeated field
                yield from _every_message(item)
