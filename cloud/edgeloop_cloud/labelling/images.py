"""Where the decrypted copies of queued images go, and the URL a labelling tool reads each by.

Two sinks: a local folder, referenced as Label Studio local-files URLs
(``/data/local-files/?d=<path under LOCAL_FILES_DOCUMENT_ROOT>``), and a private container that
is not the data container, referenced by read-only SAS URLs that expire. Decrypted images never
go to the data container: the container sink refuses it.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from edgeloop.blobstore import BlobContainer
from edgeloop.errors import ConfigError

log = logging.getLogger(__name__)

_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def image_name(sample_id: str, content_type: str) -> str:
    """A file name for a sample's decrypted image (characters outside ``[A-Za-z0-9._-]`` become ``_``)."""
    return _SAFE.sub("_", sample_id) + _EXTENSIONS.get(content_type, ".png")


def viewable(data: bytes, content_type: str, *, sample_id: str) -> tuple[bytes, str]:
    """The image as PNG or JPEG bytes a browser shows; other payloads (``.npy``) become PNG.

    Raises:
        SampleError: the bytes are not an image (a sensor vector document is named as such).
    """
    if content_type in _EXTENSIONS:
        return data, content_type
    if content_type == "application/json" or data.lstrip()[:1] == b"{":
        from edgeloop_cloud.errors import SampleError

        raise SampleError(
            f"sample {sample_id}: a sensor vector has no image to label; label it from your own "
            "records and import a sample_id,label CSV"
        )
    import cv2
    import numpy as np

    from edgeloop_cloud.samples import decode_image

    image = decode_image(data, sample_id=sample_id)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        from edgeloop_cloud.errors import SampleError

        raise SampleError(f"sample {sample_id}: cannot encode its image as PNG")
    return png.tobytes(), "image/png"


class ImageSink(Protocol):
    """Stores one decrypted image and says the URL a labelling tool reads it by."""

    def put(self, *, sample_id: str, data: bytes, content_type: str) -> str: ...


class FolderImages:
    """Decrypted copies in a local folder, as Label Studio local-files URLs.

    ``document_root`` is the server's ``LOCAL_FILES_DOCUMENT_ROOT``; the folder must lie under it.
    """

    def __init__(self, directory: Path, *, document_root: Path | None = None) -> None:
        self.directory = directory.resolve()
        self.document_root = (document_root or directory).resolve()
        if not self.directory.is_relative_to(self.document_root):
            raise ConfigError(
                f"--images-dir {directory} is not under --document-root {self.document_root}; "
                "Label Studio serves local files only below LOCAL_FILES_DOCUMENT_ROOT"
            )
        self.directory.mkdir(parents=True, exist_ok=True)

    def put(self, *, sample_id: str, data: bytes, content_type: str) -> str:
        path = self.directory / image_name(sample_id, content_type)
        path.write_bytes(data)
        relative = path.relative_to(self.document_root).as_posix()
        return f"/data/local-files/?d={quote(relative)}"


class ContainerImages:
    """Decrypted copies in a private container, as read-only SAS URLs valid ``expires_in``."""

    def __init__(self, container: BlobContainer, *, data_container: str, expires_in: timedelta) -> None:
        if container.name == data_container:
            raise ConfigError(
                f"--images-container {container.name!r} is the data container; decrypted images "
                "must go to a separate private container (name another one)"
            )
        if expires_in <= timedelta(0):
            raise ConfigError(f"--sas-minutes must be positive (got {expires_in.total_seconds() / 60:g})")
        self.container = container
        self.expires_in = expires_in
        container.ensure_container()

    def put(self, *, sample_id: str, data: bytes, content_type: str) -> str:
        blob = image_name(sample_id, content_type)
        self.container.write(blob, data, content_type=content_type)
        return self.container.read_url(blob, expires_in=self.expires_in)
