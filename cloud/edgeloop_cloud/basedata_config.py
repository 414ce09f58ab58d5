"""The ``training.base_data`` setting: which labelled dataset every candidate trains on.

The data is one of a local folder, a prefix in the data container or a CSV dataset manifest.
A folder or prefix holds one sub-folder per class of sample files (``<class>/<file>``) or a
``labels.csv`` manifest beside them. Sample files are images (PNG, JPEG, BMP, ``.npy``) or
sensor vector documents (``.json``: ``{"vector": [...]}``), one kind per set. Part of the data
is the gate's fixed hold-out: a ``holdout`` sub-folder laid out like the rest
(``holdout/<class>/<file>``), a ``holdout`` column in the manifest, or, when the data marks
none, ``holdout_share`` of each class drawn with ``holdout_seed``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The setting's name in the cloud config, for error messages.
SETTING = "training.base_data"


class BaseDataConfig(BaseModel):
    """A labelled dataset: exactly one of ``folder``, ``blob_prefix`` or ``manifest``."""

    model_config = ConfigDict(extra="forbid")

    folder: str | None = Field(
        default=None,
        description=(
            "A local folder: one sub-folder per class of image or vector (.json) files (a 'holdout' "
            "sub-folder laid out the same is the gate's fixed hold-out), or a labels.csv manifest "
            "beside them."
        ),
    )
    blob_prefix: str | None = Field(
        default=None,
        description="A prefix in the data container (e.g. 'base/digits/'), laid out like 'folder'.",
    )
    manifest: str | None = Field(
        default=None,
        description=(
            "A CSV dataset manifest with a header row: columns 'file' (relative to the manifest's "
            "folder) and 'label', optionally 'holdout' (1/0, true/false, yes/no)."
        ),
    )
    holdout_share: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Share of each class kept as the gate's fixed hold-out when the data marks none.",
    )
    holdout_seed: int = Field(
        default=0, description="Seed of the hold-out draw when the data marks none (holdout_share)."
    )
    classes: list[str] | None = Field(
        default=None,
        description="The labels the data may carry (a sample of another class is an error); unset: any.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> BaseDataConfig:
        given = [n for n in ("folder", "blob_prefix", "manifest") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(
                f"{SETTING} needs exactly one of folder, blob_prefix or manifest, got "
                f"{', '.join(given) if given else 'none'}"
            )
        return self

    def reference(self, *, container: str) -> str:
        """The dataset in one string: the folder or manifest path, or ``blob:<container>/<prefix>``."""
        if self.blob_prefix:
            return f"blob:{container}/{self.blob_prefix}"
        return str(self.folder or self.manifest)
