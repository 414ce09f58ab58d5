"""``SampleOpener`` over the EdgeLoop envelope (``edgeloop.envelope``): decrypt with the private keys.

The envelope is bound to its sample id, device id and content type; the opener expects the ones
the uploader recorded in the blob metadata (falling back to the blob name), so a renamed or
swapped blob fails to open.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from edgeloop import envelope
from edgeloop.errors import ConfigError
from edgeloop_cloud.errors import SampleError
from edgeloop_cloud.samples import SampleRef


class EnvelopeOpener:
    """Opens sealed samples with a keyring of envelope private keys."""

    def __init__(self, keyring: envelope.PrivateKeyring) -> None:
        self.keyring = keyring

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> EnvelopeOpener:
        """Load PEM private keys. Raises ConfigError naming the file that cannot be used."""
        keyring = envelope.PrivateKeyring()
        for path in paths:
            try:
                keyring.add_pem(Path(path).read_bytes())
            except (OSError, envelope.EnvelopeError, ValueError) as exc:
                raise ConfigError(f"EDGELOOP_SAMPLE_KEYS: cannot use key file {str(path)!r}: {exc}") from exc
        return cls(keyring)

    def open(self, blob: bytes, ref: SampleRef) -> bytes:
        meta = ref.metadata
        content_type = meta.get("content_type")
        if not content_type:
            raise SampleError(
                f"sample {ref.sample_id}: blob metadata lacks content_type; cannot check its envelope"
            )
        expected = envelope.EnvelopeContext(
            sample_id=meta.get("sample_id", ref.sample_id),
            device_id=meta.get("device_id", ref.device),
            content_type=content_type,
        )
        try:
            return envelope.open_bytes(blob, keyring=self.keyring, expected=expected)
        except envelope.EnvelopeError as exc:
            raise SampleError(f"sample {ref.sample_id}: {type(exc).__name__}: {exc}") from exc
