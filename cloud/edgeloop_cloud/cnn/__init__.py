"""The built-in trainer's learner: a small convolutional network trained with PyTorch on the CPU.

``net`` defines it, ``augment`` perturbs training images the way cameras differ, ``fit`` trains
it (seeded, class-balanced, every new label used), and ``export`` writes it as a plain ONNX graph
with EdgeLoop's metadata and reads its weights back to continue from a champion. Only the cloud
imports torch; devices run the exported ONNX with ONNX Runtime.
"""
