"""The cloud side's exceptions (all ``EdgeLoopError``)."""

from __future__ import annotations

from edgeloop.errors import EdgeLoopError


class CloudError(EdgeLoopError):
    """Base of the cloud side's errors."""


class StorageError(CloudError):
    """Blob storage failed (outage, permissions); the cause is chained."""


class BlobNotFoundError(StorageError):
    """The named blob does not exist."""


class PreconditionFailedError(StorageError):
    """A conditional write lost: the ETag changed, or the blob already exists."""


class LeaseHeldError(StorageError):
    """Another holder has the blob's lease."""


class SampleError(CloudError):
    """A sample could not be decrypted, verified or decoded."""


class TrainingError(CloudError):
    """Training could not produce a candidate (too little data, a single class...)."""


class RegistryError(CloudError):
    """The model registry refused an operation (version exists, alias missing...)."""


class RolloutError(CloudError):
    """A rollout could not be applied to its targets."""
