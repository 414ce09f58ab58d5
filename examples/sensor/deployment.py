"""The deployment manifest of the sensor example, for ``edgeloop dev up --manifest``.

    python deployment.py --log /abs/path/stream.csv --keys .edgeloop/keys [--port 8080] [--out FILE]

Starts from the checkout's ``deployment.template.json`` (modules, routes, volumes) and sets:
capture replays the sensor log (4 feature columns, as fast as ``--fps``), inference trusts the
signing key and serves ``POST /predict`` on 127.0.0.1:``--port``, the filter keeps a 20% random
audit share plus a random 30% (vectors have no image hash, so no near-duplicate check applies),
and the uploader seals with the envelope public key. The model arrives through the twin
(``edgeloop cloud rollout --dev-hub``). Write the manifest into the checkout root (the default):
``dev up`` runs the modules from the manifest's folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["variance", "skewness", "curtosis", "entropy"]


def sensor_policy(*, audit: float = 0.2, random_share: float = 0.3) -> dict[str, Any]:
    """The filter policy: a random audit share (the gate's current data) and a random selection."""
    limits = {"per_minute": 10_000, "per_hour": 10_000}
    return {
        "version": "sensor-1",
        "audit": {"share": audit},
        "strategies": [
            {"name": "random", "rules": [{"type": "random", "p": random_share}], "limits": limits,
             "tags": ["random-baseline"], "priority": 5},
        ],
        "limits": {"per_hour": 10_000, "per_day": 100_000},
    }  # fmt: skip


def sensor_manifest(
    *, log: Path, keys: Path, port: int, fps: float = 50.0, template: Path = ROOT / "deployment.template.json"
) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(template.read_text(encoding="utf-8"))
    content = doc["modulesContent"]
    content["capture"]["properties.desired"]["sources"] = [
        {"id": "banknotes", "kind": "sensor", "path": str(log.resolve()), "fields": FEATURES,
         "timestamp_field": None, "realtime": False, "fps": fps},
    ]  # fmt: skip
    inference = content["inference"]["properties.desired"]
    inference["public_key"] = (keys / "signing-public.pem").read_text(encoding="utf-8")
    inference["http"] = {"enabled": True, "host": "127.0.0.1", "port": port}
    filter_desired = content["filter"]["properties.desired"]
    filter_desired["policy"] = sensor_policy()
    filter_desired["summary_interval_s"] = 10
    uploader = content["uploader"]["properties.desired"]
    uploader.setdefault("encryption", {})["public_key_pem"] = (keys / "envelope-public.pem").read_text(
        encoding="utf-8"
    )
    uploader.setdefault("retry", {})["initial_backoff_s"] = 0.5
    return doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, required=True, help="the sensor log capture replays (CSV)")
    parser.add_argument(
        "--keys", type=Path, default=Path(".edgeloop/keys"), help="edgeloop keys init's folder"
    )
    parser.add_argument("--port", type=int, default=8080, help="inference's HTTP port on 127.0.0.1")
    parser.add_argument("--fps", type=float, default=50.0, help="readings a second")
    parser.add_argument("--out", type=Path, default=ROOT / "sensor.deployment.json")
    args = parser.parse_args(argv)
    doc = sensor_manifest(log=args.log, keys=args.keys, port=args.port, fps=args.fps)
    args.out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    print(f"deployment: {args.out}")


if __name__ == "__main__":
    main()
