"""A decrypted, labelled sample as a trainer receives it."""

from __future__ import annotations

from dataclasses import dataclass


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
