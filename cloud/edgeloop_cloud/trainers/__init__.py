"""Trainers behind one contract: labelled samples + manifest, base data, champion, seed in;
ONNX with EdgeLoop metadata + metrics out.

Kinds (the ``trainer`` setting, chosen by ``kind``): ``builtin`` (the small CNN, the default),
``command`` (any program), ``python`` (a ``package.module:function`` entry point) and
``azureml`` (an Azure ML command job); ``factory`` builds and runs them. ``manifest`` describes
the files a trainer receives, ``output`` the checks its output must pass; docs/cloud.md has the
guide. This package's top level stays light (no torch, no ONNX): trainer processes import it.
"""

from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.manifest import Manifest, ManifestEntry, TrainerRequest, read_request
from edgeloop_cloud.trainers.samples import LabelledSample

__all__ = ["LabelledSample", "Manifest", "ManifestEntry", "TrainerFailed", "TrainerRequest", "read_request"]
