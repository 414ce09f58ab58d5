"""Encrypted, durable upload throughput next to plain azure-storage-blob uploads of the same files
to the same Azurite, in alternating rounds of one run.

The plain side reads each file and ``upload_blob``s it, nothing else. The uploader side is the
whole path: claim (hard link), seal (RSA-OAEP wrap + AES-256-GCM), fsync, SQLite WAL records,
create-only upload of the sealed blob with metadata and of its JSON sidecar, the done record and
the notice. Both use the same number of concurrent uploads.

    python -m bench.uploader [--files 150] [--size 72000] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.service import Uploader

from edgeloop.clock import SystemClock
from edgeloop.devtools.azurite import Azurite
from edgeloop.envelope import PublicKey, generate_private_key
from tests.unit.uploader_support import selected

RESULTS = Path(__file__).resolve().parent / "results" / "uploader.json"


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    frames = folder / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = frames / f"01B{i:06d}.jpg"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def plain_round(server: Azurite, paths: list[Path], container: str, workers: int) -> float:
    """Seconds to upload every file with plain azure-storage-blob."""
    client = BlobServiceClient.from_connection_string(server.connection_string, retry_total=0)
    box = client.create_container(container)

    def one(path: Path) -> None:
        with open(path, "rb") as fin:
            box.upload_blob(f"frames/{path.name}", fin.read(), overwrite=False)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def uploader_round(
    server: Azurite,
    samples: Path,
    paths: list[Path],
    outbox: Path,
    pem: str,
    container: str,
    workers: int,
    options: dict[str, Any],
) -> float:
    """Seconds from the first accepted sample to the last ``uploaded`` notice (sent once its
    upload is recorded done)."""
    noticed: list[int] = [0]
    all_noticed = threading.Event()

    def notify(notices: list[Any]) -> None:  # the module sends these to the hub; here they are counted
        noticed[0] += len(notices)
        if noticed[0] >= len(paths):
            all_noticed.set()

    uploader = Uploader(
        samples_dir=samples,
        outbox_dir=outbox,
        device_id="bench",
        clock=SystemClock(),
        env_credential=server.connection_string,
        notify=notify,
    )
    config = UploaderConfig.model_validate(
        {
            "storage": {"container": container, "sidecar": options["sidecar"]},
            "encryption": {"public_key_pem": pem},
            "outbox": {"workers": workers, "durability": options["durability"]},
        }
    )
    items = [selected(samples, p.stem, write=False, data=p.read_bytes()) for p in paths]
    uploader.configure(config, None)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            if not uploader.upload_one():
                uploader.wake.wait(0.01)
                uploader.wake.clear()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for start_at in range(0, len(items), 16):  # as messages from the filter arrive: batches
        uploader.accept_selected_batch(items[start_at : start_at + 16])
    if not all_noticed.wait(timeout=600):  # not polling the outbox: that would slow what is measured
        raise RuntimeError(f"uploader round incomplete after 600 s: {uploader.db.counts()}")
    elapsed = time.perf_counter() - start
    stop.set()
    uploader.wake.set()
    for thread in threads:
        thread.join()
    counts = uploader.db.counts()
    uploader.close()
    if counts["done"] != len(items) or counts["quarantined"]:
        raise RuntimeError(f"uploader round incomplete: {counts}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--size", type=int, default=72_000, help="bytes per file (a 640x480 JPEG is ~72 KB)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--no-sidecar", dest="sidecar", action="store_false")
    args = parser.parse_args(argv)
    key = generate_private_key()
    pem = PublicKey(key.public_key(), "").pem().decode("ascii")
    plain_s: list[float] = []
    ours_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, Azurite(Path(tmp) / "azurite") as server:
        root = Path(tmp)
        samples = root / "samples"
        paths = make_files(samples, args.files, args.size)
        print(f"{args.files} files of {args.size} bytes, {args.workers} concurrent uploads")
        for n in range(args.rounds):
            plain_s.append(plain_round(server, paths, f"plain{n}", args.workers))
            options = {"durability": args.durability, "sidecar": args.sidecar}
            outbox = root / f"outbox{n}"
            ours_s.append(
                uploader_round(server, samples, paths, outbox, pem, f"sealed{n}", args.workers, options)
            )
            print(
                f"round {n + 1}: plain {args.files / plain_s[-1]:7.1f} files/s   "
                f"uploader {args.files / ours_s[-1]:7.1f} files/s"
            )
    plain_rate = args.files / statistics.median(plain_s)
    ours_rate = args.files / statistics.median(ours_s)
    ratio = ours_rate / plain_rate
    print(f"median: plain {plain_rate:.1f} files/s, encrypted durable {ours_rate:.1f} files/s")
    blobs = "2 blobs (envelope + sidecar)" if args.sidecar else "1 blob"
    print(f"ratio uploader/plain = {ratio:.2f} (target >= 0.9); the uploader writes {blobs} per sample")
    result: dict[str, Any] = {
        "files": args.files,
        "size": args.size,
        "workers": args.workers,
        "durability": args.durability,
        "sidecar": args.sidecar,
        "rounds": args.rounds,
        "plain_files_per_s": round(plain_rate, 2),
        "uploader_files_per_s": round(ours_rate, 2),
        "ratio": round(ratio, 3),
        "plain_s": plain_s,
        "uploader_s": ours_s,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
