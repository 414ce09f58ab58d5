"""The uploader module: claims selected samples, seals them in envelopes, keeps a durable outbox
and uploads to Azure Blob Storage; also ships a batched prediction log."""

from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.module import UploaderModule

__all__ = ["UploaderConfig", "UploaderModule"]
