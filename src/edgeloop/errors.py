"""The exception tree of EdgeLoop.

Vendor exceptions (the IoT SDK, Azure Storage, ONNX Runtime) are translated into these at the
adapter boundary and raised ``from`` the cause, so callers catch one family.
"""

from __future__ import annotations


class EdgeLoopError(Exception):
    """Base of every error EdgeLoop raises on purpose."""


class ConfigError(EdgeLoopError):
    """A configuration document (twin desired properties, method payload, file) is invalid.

    ``reason`` names the key, the value and what is accepted.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ContractError(EdgeLoopError):
    """A message body does not match any known versioned contract."""


class MessageTooLargeError(EdgeLoopError):
    """An outgoing message would exceed the edgeHub message size limit."""


class MethodError(EdgeLoopError):
    """A direct method failed with an HTTP-like status and a reason for the caller."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class HubError(EdgeLoopError):
    """Talking to edgeHub (or the dev hub) failed."""


class HubConnectionError(HubError):
    """The hub could not be reached or the connection dropped."""


class HubCredentialError(HubError):
    """The hub refused the module's credentials (wrong key, expired token, bad certificate)."""


class HubTimeoutError(HubError):
    """A hub operation did not complete in time."""
