"""The classes a label may name: the champion's ``edgeloop.labels``, or a list given by hand."""

from __future__ import annotations

from collections.abc import Sequence

from edgeloop.errors import ConfigError
from edgeloop.model_metadata import ModelMetadataError, metadata_from_map
from edgeloop_cloud.registry import Registry


def champion_classes(registry: Registry, model_name: str) -> list[str]:
    """The champion's class names, in output order.

    Raises:
        ConfigError: there is no champion, or its model names no classes (give ``--classes``).
    """
    import onnx

    champion = registry.champion(model_name)
    if champion is None:
        raise ConfigError(
            f"model {model_name!r} has no champion yet to take the classes from; give them with --classes"
        )
    model = onnx.load_from_string(registry.read_model(model_name, champion.version))
    try:
        labels = metadata_from_map({p.key: p.value for p in model.metadata_props}).labels
    except ModelMetadataError as exc:
        raise ConfigError(f"champion {champion.version}: {exc}; give the classes with --classes") from exc
    if not labels:
        raise ConfigError(f"champion {champion.version} carries no edgeloop.labels; give them with --classes")
    return labels


def given_classes(text: str) -> list[str]:
    """``--classes a,b,c`` as a list, each once, in the order given.

    Raises:
        ConfigError: empty, or a name repeated.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--classes {text!r} names no class; give them comma-separated, e.g. cat,dog")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--classes {text!r} repeats {repeated}")
    return names


def resolve_classes(registry: Registry, model_name: str, given: Sequence[str] | None) -> list[str]:
    return list(given) if given else champion_classes(registry, model_name)
