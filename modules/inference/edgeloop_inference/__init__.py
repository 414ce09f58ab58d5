"""The inference module: scores every frame with an ONNX model and hot-swaps verified models."""
