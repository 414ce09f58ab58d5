"""A MobileNet-class image classifier built on the spot with ``onnx.helper`` (nothing downloaded).

The architecture is MobileNet v1's (a strided 3x3 stem, then thirteen depthwise-separable
blocks: a 3x3 depthwise convolution and a 1x1 pointwise one, each followed by ReLU6; global
average pooling, a fully connected layer and softmax), at a width multiplier (0.5 by default)
and an input size (160x160 by default). Batch normalisation is folded into the convolutions'
biases, as an exported model has it. Weights are random (He-scaled, fixed seed): the benchmark
measures the work, not the accuracy. The model carries EdgeLoop's metadata
(``edgeloop.preprocess``, ``edgeloop.labels``; docs/model-metadata.md), so the inference module
serves it like any exported model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeloop.model_metadata import Preprocess, embed_metadata

#: (output channels at width 1.0, stride) of MobileNet v1's depthwise-separable blocks.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
STEM = 32
LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck", "dog", "cat", "bird", "background")
INPUT = "image"
OUTPUT = "probabilities"
OPSET = 17


class _Graph:
    """Nodes and initializers of the graph being built, with fresh names."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def constant(self, prefix: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name=name))
        return name

    def conv_relu6(self, x: str, *, cin: int, cout: int, kernel: int, stride: int, group: int) -> str:
        """Convolution (bias = folded batch norm) then ReLU6 (``Clip`` to [0, 6])."""
        from onnx import helper

        fan_in = cin // group * kernel * kernel
        weight = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), (cout, cin // group, kernel, kernel))
        w = self.constant("w", weight)
        b = self.constant("b", self.rng.normal(0.0, 0.05, cout))
        conv = self.name("conv")
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [conv],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                group=group,
            )
        )
        out = self.name("relu6")
        low = self.constant("lo", np.array(0.0))
        high = self.constant("hi", np.array(6.0))
        self.nodes.append(helper.make_node("Clip", [conv, low, high], [out]))
        return out


def channels(width: float) -> list[int]:
    """Output channels of the stem and of each block at width multiplier ``width`` (at least 8)."""
    return [max(8, int(c * width)) for c in (STEM, *(c for c, _ in BLOCKS))]


def build_model(*, size: int = 160, width: float = 0.5, classes: int = len(LABELS), seed: int = 0) -> bytes:
    """The serialized ONNX model: input ``image`` float [N, 3, size, size] (RGB, ImageNet mean and
    std), output ``probabilities`` float [N, classes]."""
    import onnx
    from onnx import TensorProto, helper

    if size < 32 or size % 32:
        raise ValueError(f"size = {size}: must be a multiple of 32, at least 32")
    if not 1 <= classes <= len(LABELS):
        raise ValueError(f"classes = {classes}: must be 1..{len(LABELS)}")
    g = _Graph(seed)
    chans = channels(width)
    x = g.conv_relu6(INPUT, cin=3, cout=chans[0], kernel=3, stride=2, group=1)
    cin = chans[0]
    for cout, (_, stride) in zip(chans[1:], BLOCKS, strict=True):
        x = g.conv_relu6(x, cin=cin, cout=cin, kernel=3, stride=stride, group=cin)  # depthwise
        x = g.conv_relu6(x, cin=cin, cout=cout, kernel=1, stride=1, group=1)  # pointwise
        cin = cout
    pooled, flat, logits = g.name("pool"), g.name("flat"), g.name("logits")
    fc_w = g.constant("fc_w", g.rng.normal(0.0, np.sqrt(1.0 / cin), (cin, classes)))
    fc_b = g.constant("fc_b", np.zeros(classes))
    g.nodes += [
        helper.make_node("GlobalAveragePool", [x], [pooled]),
        helper.make_node("Flatten", [pooled], [flat], axis=1),
        helper.make_node("Gemm", [flat, fc_w, fc_b], [logits]),
        helper.make_node("Softmax", [logits], [OUTPUT], axis=1),
    ]
    graph = helper.make_graph(
        g.nodes,
        f"mobilenet_v1_{width:g}_{size}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", classes])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    embed_metadata(
        model,
        preprocess=Preprocess(
            width=size,
            height=size,
            color="rgb",
            layout="NCHW",
            mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225],
            interpolation="linear",
            output_kind="probabilities",
        ),
        labels=list(LABELS[:classes]),
        name="camera-mobilenet",
        version="v0",
    )
    data: bytes = model.SerializeToString()
    return data


def multiply_adds(*, size: int = 160, width: float = 0.5, classes: int = len(LABELS)) -> int:
    """Multiply-adds of one forward pass (convolutions and the fully connected layer)."""
    chans = channels(width)
    side = size // 2
    total = side * side * 3 * 9 * chans[0]
    cin = chans[0]
    for cout, (_, stride) in zip(chans[1:], BLOCKS, strict=True):
        side //= stride
        total += side * side * cin * 9 + side * side * cin * cout
        cin = cout
    return total + cin * classes
