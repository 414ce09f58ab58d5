"""Versioned message contracts that travel between modules over edgeHub routes."""

from edgeloop.contracts.embedding import (
    MAX_EMBEDDING_VALUES,
    EmbeddingError,
    decode_embedding,
    encode_embedding,
)
from edgeloop.contracts.messages import (
    ACCEPTED,
    CONTRACTS,
    Batch,
    BatchEnvelope,
    Contract,
    FrameRef,
    LabelScore,
    Prediction,
    PredictionBatch,
    RawPixels,
    SelectedSample,
    Summary,
    UploadedNotice,
    contract_for_schema,
)

__all__ = [
    "ACCEPTED",
    "CONTRACTS",
    "MAX_EMBEDDING_VALUES",
    "Batch",
    "BatchEnvelope",
    "Contract",
    "EmbeddingError",
    "FrameRef",
    "LabelScore",
    "Prediction",
    "PredictionBatch",
    "RawPixels",
    "SelectedSample",
    "Summary",
    "UploadedNotice",
    "contract_for_schema",
    "decode_embedding",
    "encode_embedding",
]
