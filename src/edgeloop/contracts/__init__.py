"""Versioned message contracts that travel between modules over edgeHub routes."""

from edgeloop.contracts.messages import (
    CONTRACTS,
    BatchEnvelope,
    Contract,
    FrameRef,
    LabelScore,
    Prediction,
    SelectedSample,
    Summary,
    UploadedNotice,
    contract_for_schema,
)

__all__ = [
    "CONTRACTS",
    "BatchEnvelope",
    "Contract",
    "FrameRef",
    "LabelScore",
    "Prediction",
    "SelectedSample",
    "Summary",
    "UploadedNotice",
    "contract_for_schema",
]
