"""The model's embedding forwarded with each prediction: found through ``edgeloop.embedding``,
checked at load, encoded as float16, and left out with a reason when it cannot be forwarded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from edgeloop_inference.providers import ProviderChoice
from edgeloop_inference.scoring import embedding_texts, predictions
from edgeloop_inference.session import LoadedModel, ModelIdentity, load_model

from edgeloop.contracts import decode_embedding
from edgeloop.model_metadata import Preprocess, embed_metadata
from tests import model_factory as mf
from tests.unit.test_inference_module import Harness

FEATURES = 4
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def embedding_model(*, dims: int | str = 8, named: str | None = "emb", output_dims: int = 8) -> bytes:
    """Softmax scores 'p' and an embedding output 'emb' ([N, output_dims], declared [N, dims])."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["z"]),
            helper.make_node("Softmax", ["z"], ["p"], axis=1),
            helper.make_node("MatMul", ["x", "e"], ["emb"]),
        ],
        "embedding",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [
            helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", dims]),
        ],
        [
            numpy_helper.from_array(rng.normal(0, 1, (FEATURES, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(np.zeros(3, np.float32), "b"),
            numpy_helper.from_array(rng.normal(0, 1, (FEATURES, output_dims)).astype(np.float32), "e"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pre = Preprocess(input_kind="vector", vector_size=FEATURES, scale=1.0)
    embed_metadata(model, preprocess=pre, labels=["a", "b", "c"], embedding=named)
    return bytes(model.SerializeToString())


def load(data: bytes) -> LoadedModel:
    identity = ModelIdentity("m", "1", "0" * 64, "test")
    choice = ProviderChoice(providers=["CPUExecutionProvider"], warnings=[])
    return load_model(data, identity=identity, choice=choice, loaded_at=T0, output_name="p")


def test_a_named_embedding_output_is_read_beside_the_scores() -> None:
    # given
    model = load(embedding_model())
    # when
    probs, embeddings = model.infer(np.ones((3, FEATURES), np.float32))
    # then
    assert model.embedding_output == "emb"
    assert probs.shape == (3, 3)
    assert embeddings is not None
    assert embeddings.shape == (3, 8)
    assert model.describe()["embedding"] == {"named": "emb", "output": "emb", "problem": None}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (lambda: embedding_model(named="missing"), "names output 'missing', which the model does not have"),
        (lambda: embedding_model(dims=65, output_dims=65), "has 65 values a sample; at most 64"),
        (lambda: embedding_model(dims="D", output_dims=80), "80 values a sample; at most 64"),
    ],
)
def test_an_unusable_embedding_output_is_reported_and_the_model_serves_without_it(
    data: Callable[[], bytes], says: str
) -> None:
    # when
    model = load(data())
    probs, embeddings = model.infer(np.ones((2, FEATURES), np.float32))
    # then
    assert model.embedding_output is None
    assert says in (model.embedding_problem or "")
    assert model.describe()["embedding"]["problem"] == model.embedding_problem
    assert probs.shape == (2, 3)
    assert embeddings is None


def test_a_model_without_embedding_metadata_has_no_embedding_and_no_problem() -> None:
    model = load(embedding_model(named=None))
    assert (model.embedding_output, model.embedding_problem) == (None, None)


def test_embedding_texts_encode_rows_and_leave_out_non_finite_ones() -> None:
    # given
    rows = np.array([[0.5, -1.0], [np.nan, 1.0], [2.0, 3.0]], np.float32)
    # when
    texts, problem = embedding_texts(rows, 3)
    # then
    assert texts[1] is None
    assert [decode_embedding(t) for t in texts if t] == [(0.5, -1.0), (2.0, 3.0)]
    assert problem == "1 of 3 embeddings held NaN or infinite values"


@pytest.mark.parametrize(
    ("rows", "count", "says"),
    [
        (np.zeros((2, 70), np.float32), 2, "70 values a sample"),
        (np.zeros((3, 4), np.float32), 2, "shape [3, 4], expected [2, D]"),
        (np.zeros((2, 4, 1), np.float32), 2, "shape [2, 4, 1]"),
        (np.zeros((2, 4), np.int64), 2, "dtype int64"),
    ],
)
def test_a_batch_whose_embeddings_cannot_be_forwarded_goes_without(
    rows: np.ndarray, count: int, says: str
) -> None:
    texts, problem = embedding_texts(rows, count)
    assert texts == [None] * count
    assert says in (problem or "")


def test_predictions_carry_the_embeddings_given() -> None:
    # given
    frames = [mf.frame_ref(i, vector=[0.0] * FEATURES) for i in range(2)]
    texts, _ = embedding_texts(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), 2)
    # when
    made = predictions(
        frames, np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), labels=["a", "b", "c"], top_k=2,
        include_scores=False, model_name="m", model_version="1", latency_ms=1.0, scored_at=T0,
        embeddings=texts,
    )  # fmt: skip
    # then
    assert [decode_embedding(p.embedding or "") for p in made] == [(1.0, 0.0), (0.0, 1.0)]
    with pytest.raises(ValueError, match="1 embeddings for 2 frames"):
        predictions(
            frames, np.ones((2, 3)) / 3, labels=["a", "b", "c"], top_k=2, include_scores=False,
            model_name="m", model_version="1", latency_ms=1.0, scored_at=T0, embeddings=texts[:1],
        )  # fmt: skip


def test_the_module_forwards_the_embedding_of_each_prediction(tmp_path: Path) -> None:
    # given
    with Harness(tmp_path, initial=embedding_model()) as h:
        h.wait_model(status="loaded")
        # when
        h.hub.push_input("frames", [mf.frame_ref(i, vector=[0.1 * i, 0.2, 0.3, 0.4]) for i in range(1, 4)])
        preds = h.wait_predictions(3)
        stats = h.module.stats()
        reported = h.model()
    # then
    assert all(p.status == "ok" for p in preds)
    assert all(len(decode_embedding(p.embedding or "")) == 8 for p in preds)
    assert len({p.embedding for p in preds}) == 3
    assert stats["embedding"] == {"output": "emb", "problem": None}
    assert reported["embedding"]["output"] == "emb"


def test_the_module_reports_why_predictions_go_without_embedding(tmp_path: Path) -> None:
    # given: metadata naming an output the model lacks
    with Harness(tmp_path, initial=embedding_model(named="feat")) as h:
        h.wait_model(status="loaded")
        # when
        h.hub.push_input("frames", [mf.frame_ref(1, vector=[0.1, 0.2, 0.3, 0.4])])
        [pred] = h.wait_predictions(1)
        stats = h.module.stats()
    # then
    assert pred.status == "ok"
    assert pred.embedding is None
    assert "'feat', which the model does not have" in stats["embedding"]["problem"]
