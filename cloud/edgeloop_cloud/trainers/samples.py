"""A decrypted, labelled sample as a trainer receives it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from edgeloop_cloud.samples import SampleRef


@dataclass(frozen=True)
class LabelledSample:
    """One uploaded sample after decryption, with its label and where it came from.

    ``audit`` marks the devices' random audit share: trainers must not train on those (the
    gate evaluates on them); they are handed over so that a trainer's metrics may report them.
    """

    sample_id: str
    label: str
    data: bytes
    suffix: str = ""  # the sample file's extension, ".png", ".jpg", ".npy" ...
    device: str = ""
    strategy: str = ""
    audit: bool = False
    blob: str = ""
    sha256: str = ""

    @property
    def file_name(self) -> str:
        return f"{self.sample_id}{self.suffix}"


def labelled_sample(ref: SampleRef, label: str, plaintext: bytes, sha256: str) -> LabelledSample:
    """The trainer's view of an uploaded sample: its file extension comes from the blob name
    (``<sample_id>[.ext].elenv``)."""
    leaf = PurePosixPath(ref.blob_name).name.removesuffix(".elenv")
    suffix = leaf[len(ref.sample_id) :] if leaf.startswith(ref.sample_id) else ""
    return LabelledSample(
        sample_id=ref.sample_id, label=label, data=plaintext, suffix=suffix, device=ref.device,
        strategy=ref.metadata.get("strategy", ""), audit=ref.is_audit, blob=ref.blob_name, sha256=sha256,
    )  # fmt: skip
