"""The gate scores any ONNX classifier with EdgeLoop metadata, reading the output the device reads."""

from __future__ import annotations

import numpy as np
import pytest
from edgeloop_cloud.evaluation import EvalItem, evaluate, load_check

from tests.model_factory import tiny_cnn


def test_a_model_with_a_logits_output_is_scored() -> None:
    # given: a CNN whose only output is named 'logits', as many exporters name it
    model = tiny_cnn(classes=3, labels=["cat", "dog", "fox"])
    rng = np.random.default_rng(0)
    items = [EvalItem(rng.integers(0, 255, (16, 16), dtype=np.uint8), "cat") for _ in range(6)]
    # when
    evaluation = evaluate(model, items, repeats=1)
    # then
    assert evaluation.loaded, evaluation.error
    assert evaluation.count == 6
    assert load_check(model)[2] == ["cat", "dog", "fox"]


def test_a_model_without_a_score_matrix_is_refused_with_its_outputs() -> None:
    from onnx import TensorProto, helper

    from edgeloop.model_metadata import Preprocess, embed_metadata

    graph = helper.make_graph(
        [helper.make_node("ArgMax", ["input"], ["label"], axis=1)], "argmax",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N", 1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    embed_metadata(model, preprocess=Preprocess(input_kind="vector"), labels=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected a float \[N, classes\] output .*'label'"):
        load_check(model.SerializeToString())
