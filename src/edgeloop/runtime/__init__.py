"""The module runtime shared by every EdgeLoop edge module."""

from edgeloop.runtime.codec import InboundMessage, OutboundMessage, decode, encode
from edgeloop.runtime.config import ConfigState, merge_patch, validate_config
from edgeloop.runtime.hub import HubClient, MethodCall, MethodResponse, SdkHubClient
from edgeloop.runtime.methods import MethodRegistry, NoPayload
from edgeloop.runtime.module import EdgeModule, ModuleContext, ModuleRuntime, run_module

__all__ = [
    "ConfigState",
    "EdgeModule",
    "HubClient",
    "InboundMessage",
    "MethodCall",
    "MethodRegistry",
    "MethodResponse",
    "ModuleContext",
    "ModuleRuntime",
    "NoPayload",
    "OutboundMessage",
    "SdkHubClient",
    "decode",
    "encode",
    "merge_patch",
    "run_module",
    "validate_config",
]
