"""The inference module: scores every frame with an ONNX model and hot-swaps verified models."""

from edgeloop_inference.config import InferenceConfig, ModelSpec
from edgeloop_inference.module import InferenceModule

__all__ = ["InferenceConfig", "InferenceModule", "ModelSpec"]
