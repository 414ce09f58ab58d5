"""The trained network as a plain ONNX graph, and its weights read back from one.

The graph is written node by node (Conv, BatchNormalization, Relu, MaxPool, GlobalAveragePool, Gemm, Softmax,
ArgMax at opset 17), so its bytes depend only on the weights: no exporter version or tracing
decides them. Outputs: ``label`` (int64 ``[N]``), ``probabilities`` (float ``[N, classes]``) and
``embedding`` (float ``[N, D]``, named by the ``edgeloop.embedding`` metadata entry). The
``edgeloop.trainer`` entry records the architecture, so a later run can continue from a
champion's weights (``read_weights``) instead of starting from scratch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgeloop_cloud.cnn.net import NetShape, SmallConvNet

#: Metadata entry describing the architecture (JSON), and the kind it names.
TRAINER_KEY = "edgeloop.trainer"
TRAINER_KIND = "edgeloop.cnn/1"
#: Metadata entry naming the embedding output (read by the inference module).
EMBEDDING_KEY = "edgeloop.embedding"
INPUT_NAME = "input"
OUTPUT_LABEL = "label"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_EMBEDDING = "embedding"
_OPSET = 17
_IR_VERSION = 8


def _norm(make: Any, name: str, source: str, target: str) -> Any:
    inputs = [source, f"{name}.weight", f"{name}.bias", f"{name}.running_mean", f"{name}.running_var"]
    return make("BatchNormalization", inputs, [target], epsilon=1e-5)


def _nodes(helper: Any) -> list[Any]:
    make = helper.make_node
    return [
        make("Conv", [INPUT_NAME, "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1]),
        _norm(make, "bn1", "c1", "n1"),
        make("Relu", ["n1"], ["r1"]),
        make("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        make("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1, 1, 1]),
        _norm(make, "bn2", "c2", "n2"),
        make("Relu", ["n2"], ["r2"]),
        make("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        make("Conv", ["p2", "conv3.weight", "conv3.bias"], ["c3"], pads=[1, 1, 1, 1]),
        _norm(make, "bn3", "c3", "n3"),
        make("Relu", ["n3"], ["r3"]),
        make("GlobalAveragePool", ["r3"], ["g"]),
        make("Flatten", ["g"], ["flat"], axis=1),
        make("Gemm", ["flat", "embed.weight", "embed.bias"], ["e"], transB=1),
        make("Relu", ["e"], [OUTPUT_EMBEDDING]),
        make("Gemm", [OUTPUT_EMBEDDING, "head.weight", "head.bias"], ["logits"], transB=1),
        make("Softmax", ["logits"], [OUTPUT_PROBABILITIES], axis=1),
        make("ArgMax", ["logits"], [OUTPUT_LABEL], axis=1, keepdims=0),
    ]


def to_onnx(net: SmallConvNet, *, height: int, width: int) -> Any:
    """An ``onnx.ModelProto`` computing ``net`` (weights as float32 initializers)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = net.shape
    initializers = [
        numpy_helper.from_array(tensor.detach().numpy().astype(np.float32), name)
        for name, tensor in sorted(net.state_dict().items())
        if not name.endswith("num_batches_tracked")  # a training counter, not a weight
    ]
    graph = helper.make_graph(
        _nodes(helper),
        "edgeloop_cnn",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["N", shape.channels_in, height, width]
            )
        ],
        [
            helper.make_tensor_value_info(OUTPUT_LABEL, TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info(OUTPUT_PROBABILITIES, TensorProto.FLOAT, ["N", shape.classes]),
            helper.make_tensor_value_info(OUTPUT_EMBEDDING, TensorProto.FLOAT, ["N", shape.embedding]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="edgeloop",
        ir_version=_IR_VERSION,
    )
    onnx.checker.check_model(model)
    description = {
        "kind": TRAINER_KIND,
        "channels_in": shape.channels_in,
        "classes": shape.classes,
        "widths": list(shape.widths),
        "embedding": shape.embedding,
    }
    helper.set_model_props(
        model, {TRAINER_KEY: json.dumps(description, sort_keys=True), EMBEDDING_KEY: OUTPUT_EMBEDDING}
    )
    return model


def read_shape(props: dict[str, str]) -> NetShape | None:
    """The architecture recorded in a model's metadata, or None when it is not this trainer's."""
    try:
        doc = json.loads(props.get(TRAINER_KEY, ""))
    except json.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("kind") != TRAINER_KIND:
        return None
    try:
        return NetShape(
            channels_in=int(doc["channels_in"]),
            classes=int(doc["classes"]),
            widths=tuple(int(w) for w in doc["widths"]),  # type: ignore[arg-type]
            embedding=int(doc["embedding"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ExportedWeights:
    """What training continues from: a model this trainer exported, read back in one parse."""

    shape: NetShape
    weights: dict[str, torch.Tensor]
    labels: list[str] | None


def read_weights(model_bytes: bytes) -> ExportedWeights | None:
    """The architecture, weights and label names of a model this trainer exported, or None for
    any other model (another architecture, another trainer, or bytes that are not ONNX)."""
    import onnx
    from onnx import numpy_helper

    from edgeloop.model_metadata import LABELS_KEY, ModelMetadataError, parse_labels

    try:
        model = onnx.load_from_string(model_bytes)
    except Exception:  # not ONNX: the caller trains from scratch
        return None
    props = {p.key: p.value for p in model.metadata_props}
    shape = read_shape(props)
    if shape is None:
        return None
    try:
        labels = parse_labels(props[LABELS_KEY]) if LABELS_KEY in props else None
    except ModelMetadataError:
        labels = None
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    expected = {
        k: v for k, v in SmallConvNet(shape).state_dict().items() if not k.endswith("num_batches_tracked")
    }
    if set(weights) != set(expected) or any(weights[k].shape != v.shape for k, v in expected.items()):
        return None
    return ExportedWeights(shape=shape, weights=weights, labels=labels)
