"""Encrypted, durable upload throughput next to plain azure-storage-blob uploads of the same files
to the same Azurite, in alternating rounds of one run.

Like with like: the same files, the same Azurite, the same credential kind on both sides
(``--credential key``, the default: a connection string, every request signed with the account
key; ``--credential sas``: a container SAS URL with create and write permission, as a device is
given, nothing signed per request). The plain side reads each file and ``upload_blob``s it with
the SDK's defaults, nothing else. The uploader side is the
whole path: seal (RSA-OAEP wrap + AES-256-GCM) straight from the sample volume, the batch's
durable commit (SQLite WAL, fsync with ``durability: full``), one create-only request per sample
(the sealed blob with its metadata and index tags: the same Put Blob request ``upload_blob``
sends, made and signed by ``edgeloop_uploader.putblob`` and sent through
``edgeloop_uploader.httpwire`` instead of the SDK's pipeline and ``requests``), the done record
and the ``uploaded`` notice.
``--sidecar`` adds the opt-in JSON sidecar, a second request per sample.

Concurrency: ``--workers N`` gives the plain side N concurrent uploads and the uploader N upload
workers, one request in flight each (with ``--sidecar`` two: a sample's sidecar beside the next
sample's envelope). The plain side is measured with N and with 2N concurrent uploads, and both
ratios are printed. CPU seconds per file of this process and of Azurite show where the time goes
(both share the machine). Rounds run plain xN, uploader, plain x2N, then the other way round, so
each uploader round runs beside the plain xN round it is paired with; the per-round ratios
(median, range) are printed beside the ratio of the median rates.

    python -m bench.uploader [--files 150] [--size 72000] [--workers 2] [--rounds 4] [--sidecar]
                             [--credential key|sas]

``--frames N`` measures the uploader alone, fed as the digits pipeline feeds it: N frames in
messages of 8 predictions (``accept_predictions``), 3 of each 8 selected (``accept_selected_batch``,
1.5 KB samples, about a 64x64 PNG), a message every 4 ms, 2 upload workers, Azurite, connection
string. A round ends once every sample's ``uploaded`` notice is out; it prints the CPU ms a frame
of the feeding thread (predictions, intake) and of the upload workers (thread CPU), and of the
whole process. Unlike ``bench.pipeline``, whose figure stops when the filter has seen the last
frame (a third of the uploads done by then), every upload is in it.

    python -m bench.uploader --frames 1600 [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.service import Uploader

from edgeloop.clock import SystemClock
from edgeloop.devtools.azurite import Azurite
from edgeloop.envelope import PublicKey, generate_private_key
from tests.unit.uploader_support import prediction, selected

RESULTS = Path(__file__).resolve().parent / "results" / "uploader.json"
FRAMES_RESULTS = RESULTS.with_name("uploader-frames.json")
_TICKS = os.sysconf("SC_CLK_TCK")


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    frames = folder / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = frames / f"01B{i:06d}.jpg"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def _process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when it is not known)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class Meter:
    """Wall seconds, and CPU seconds of this process and of Azurite, of the blocks it times."""

    azurite_pid: int | None
    seconds: list[float] = field(default_factory=list)
    own_cpu: list[float] = field(default_factory=list)
    azurite_cpu: list[float] = field(default_factory=list)

    @contextmanager
    def timing(self) -> Iterator[None]:
        wall, own, server = time.perf_counter(), time.process_time(), _process_cpu_s(self.azurite_pid)
        yield
        self.seconds.append(time.perf_counter() - wall)
        self.own_cpu.append(time.process_time() - own)
        self.azurite_cpu.append(_process_cpu_s(self.azurite_pid) - server)

    def summary(self, files: int) -> dict[str, float]:
        return {
            "files_per_s": round(files / statistics.median(self.seconds), 2),
            "cpu_ms_per_file": round(1000 * statistics.median(self.own_cpu) / files, 3),
            "azurite_cpu_ms_per_file": round(1000 * statistics.median(self.azurite_cpu) / files, 3),
        }


def container_credential(server: Azurite, container: str, kind: str) -> str:
    """Create ``container``; its connection string (``key``) or a container SAS URL (``sas``) with
    the permissions a device's SAS has (create, write), valid for a day."""
    service = BlobServiceClient.from_connection_string(server.connection_string, retry_total=0)
    box = service.create_container(container)
    if kind == "key":
        return server.connection_string
    token = generate_container_sas(
        str(service.account_name),
        container,
        account_key=service.credential.account_key,
        permission=ContainerSasPermissions(create=True, write=True),
        expiry=datetime.now(UTC) + timedelta(days=1),
    )
    return f"{box.url}?{token}"


def plain_round(
    server: Azurite, paths: list[Path], container: str, workers: int, kind: str, meter: Meter
) -> None:
    """Upload every file with plain azure-storage-blob, timed by ``meter``."""
    credential = container_credential(server, container, kind)
    if kind == "key":
        box = ContainerClient.from_connection_string(credential, container_name=container, retry_total=0)
    else:
        box = ContainerClient.from_container_url(credential, retry_total=0)

    def one(path: Path) -> None:
        with open(path, "rb") as fin:
            box.upload_blob(f"frames/{path.name}", fin.read(), overwrite=False)

    with meter.timing(), ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))
    box.close()


def wind_down(uploader: Uploader, stop: threading.Event, threads: list[threading.Thread]) -> dict[str, int]:
    """Stop the round's upload workers and the uploader; the outbox's counts by state."""
    stop.set()
    uploader.stop_uploads()
    for thread in threads:
        thread.join()
    counts = uploader.db.counts()
    uploader.close()
    return counts


def uploader_round(
    server: Azurite,
    samples: Path,
    paths: list[Path],
    outbox: Path,
    pem: str,
    container: str,
    workers: int,
    options: dict[str, Any],
    meter: Meter,
) -> None:
    """Accept and upload every file through the uploader, timed by ``meter`` from the first
    accepted sample to the last ``uploaded`` notice (sent once its upload is recorded done)."""
    credential = container_credential(server, container, options["credential"])
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
        env_credential=credential,
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

    def work() -> None:  # as the module's upload workers do
        while not stop.is_set():
            if not uploader.upload_ready():
                uploader.wake.wait(0.01)
                uploader.wake.clear()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    with meter.timing():
        for thread in threads:
            thread.start()
        for start_at in range(0, len(items), 16):  # as messages from the filter arrive: batches
            uploader.accept_selected_batch(items[start_at : start_at + 16])
        if not all_noticed.wait(timeout=600):  # not polling the outbox: that would slow what is timed
            raise RuntimeError(f"uploader round incomplete after 600 s: {uploader.db.counts()}")
    counts = wind_down(uploader, stop, threads)
    if counts["done"] != len(items) or counts["quarantined"]:
        raise RuntimeError(f"uploader round incomplete: {counts}")


def frames_round(server: Azurite, root: Path, pem: str, frames: int, container: str) -> dict[str, float]:
    """The uploader fed as in the digits pipeline (``--frames``): CPU ms a frame by thread."""
    samples = root / "samples"
    per_message, chosen = 8, 3
    messages = []
    for m in range(frames // per_message):
        items = [selected(samples, f"01F{m:06d}{j}", data=os.urandom(1500)) for j in range(chosen)]
        others = [prediction(f"01P{m:06d}{j}") for j in range(per_message - chosen)]
        messages.append((items, [item.prediction for item in items] + others))
    wanted = len(messages) * chosen
    noticed: list[int] = [0]
    all_noticed = threading.Event()

    def notify(notices: list[Any]) -> None:
        noticed[0] += len(notices)
        if noticed[0] >= wanted:
            all_noticed.set()

    uploader = Uploader(
        samples_dir=samples,
        outbox_dir=root / "outbox",
        device_id="bench",
        clock=SystemClock(),
        env_credential=server.connection_string,
        notify=notify,
    )
    config = UploaderConfig.model_validate(
        {"storage": {"container": container}, "encryption": {"public_key_pem": pem}, "outbox": {"workers": 2}}
    )
    uploader.configure(config, None)
    stop = threading.Event()
    worker_cpu: list[float] = []

    def work() -> None:  # as the module's upload workers do
        started = time.thread_time()
        while not stop.is_set():
            if not uploader.upload_ready():
                uploader.wake.wait(0.25)
                uploader.wake.clear()
        worker_cpu.append(time.thread_time() - started)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    process, feeding = time.process_time(), 0.0
    for items, predictions in messages:
        started = time.thread_time()
        uploader.accept_predictions(predictions)
        uploader.accept_selected_batch(items)
        feeding += time.thread_time() - started
        time.sleep(0.004)
    if not all_noticed.wait(timeout=600):
        raise RuntimeError(f"frames round incomplete after 600 s: {uploader.db.counts()}")
    process = time.process_time() - process
    counts = wind_down(uploader, stop, threads)
    if counts["done"] != wanted or counts["quarantined"]:
        raise RuntimeError(f"frames round incomplete: {counts}")
    n = len(messages) * per_message
    return {
        "feeding": 1000 * feeding / n,
        "workers": 1000 * sum(worker_cpu) / n,
        "process": 1000 * process / n,
    }


def frames_main(frames: int, rounds: int) -> int:
    key = generate_private_key()
    pem = PublicKey(key.public_key(), "").pem().decode("ascii")
    results: list[dict[str, float]] = []
    print(f"{frames} frames, messages of 8 predictions with 3 selected (1.5 KB), 2 upload workers")
    with tempfile.TemporaryDirectory() as tmp, Azurite(Path(tmp) / "azurite") as server:
        for n in range(rounds):
            container = f"frames{n}"
            container_credential(server, container, "key")  # creates it
            figures = frames_round(server, Path(tmp) / f"round{n}", pem, frames, container)
            results.append(figures)
            print(
                f"round {n + 1}: CPU ms a frame: feeding (predictions, intake) {figures['feeding']:.3f}, "
                f"upload workers {figures['workers']:.3f}, process {figures['process']:.3f}"
            )
    medians = {part: round(statistics.median(r[part] for r in results), 3) for part in results[0]}
    print(f"median CPU ms a frame: {medians}")
    FRAMES_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    FRAMES_RESULTS.write_text(
        json.dumps({"frames": frames, "rounds": rounds, "median": medians, "runs": results}, indent=2) + "\n"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--size", type=int, default=72_000, help="bytes per file (a 640x480 JPEG is ~72 KB)")
    parser.add_argument("--workers", type=int, default=2, help="plain concurrent uploads = uploader workers")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument(
        "--sidecar", action="store_true", help="also write the JSON sidecar (storage.sidecar: true)"
    )
    parser.add_argument(
        "--credential",
        choices=["key", "sas"],
        default="key",
        help="both sides: a connection string (shared key) or a create/write container SAS URL",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=0,
        help="the uploader alone, fed as in the digits pipeline",
    )
    args = parser.parse_args(argv)
    if args.frames:
        return frames_main(args.frames, args.rounds)
    key = generate_private_key()
    pem = PublicKey(key.public_key(), "").pem().decode("ascii")
    workers, in_flight = args.workers, 2 * args.workers
    requests = in_flight if args.sidecar else workers
    options = {"durability": args.durability, "sidecar": args.sidecar, "credential": args.credential}
    with tempfile.TemporaryDirectory() as tmp, Azurite(Path(tmp) / "azurite") as server:
        root = Path(tmp)
        samples = root / "samples"
        paths = make_files(samples, args.files, args.size)
        plain, wider, ours = Meter(server.pid), Meter(server.pid), Meter(server.pid)
        sides: list[tuple[str, Meter, Callable[[int], None]]] = [
            (
                f"plain x{workers}",
                plain,
                lambda n: plain_round(server, paths, f"plain{n}", workers, args.credential, plain),
            ),
            (
                "uploader",
                ours,
                lambda n: uploader_round(
                    server, samples, paths, root / f"outbox{n}", pem, f"sealed{n}", workers, options, ours
                ),
            ),
            (
                f"plain x{in_flight}",
                wider,
                lambda n: plain_round(server, paths, f"wide{n}", in_flight, args.credential, wider),
            ),
        ]
        blobs = "2 blobs (envelope, then sidecar)" if args.sidecar else "1 blob with metadata and tags"
        print(
            f"{args.files} files of {args.size} bytes; plain: {workers} concurrent uploads (and "
            f"{in_flight}); uploader: {workers} workers, {blobs} per sample, up to {requests} "
            f"requests in flight; durability {args.durability}; credential {args.credential} on both sides"
        )
        for n in range(args.rounds):
            # plain xN, uploader, plain x2N, then the other way round: drift cancels out, and each
            # uploader round runs next to the plain xN round it is paired with
            for _label, _meter, run in sides if n % 2 == 0 else sides[::-1]:
                run(n)
            print(
                f"round {n + 1}: plain x{workers} {args.files / plain.seconds[-1]:6.1f} files/s   "
                f"plain x{in_flight} {args.files / wider.seconds[-1]:6.1f} files/s   "
                f"uploader {args.files / ours.seconds[-1]:6.1f} files/s   "
                f"ratio {plain.seconds[-1] / ours.seconds[-1]:4.2f}"
            )
    result: dict[str, Any] = {
        "files": args.files,
        "size": args.size,
        "workers": workers,
        "uploader_requests_in_flight_max": requests,
        "durability": args.durability,
        "sidecar": args.sidecar,
        "credential": args.credential,
        "rounds": args.rounds,
        "plain": plain.summary(args.files),
        "plain_same_requests_in_flight": wider.summary(args.files),
        "uploader": ours.summary(args.files),
        "plain_s": plain.seconds,
        "plain_same_requests_in_flight_s": wider.seconds,
        "uploader_s": ours.seconds,
    }
    paired = sorted(p / u for p, u in zip(plain.seconds, ours.seconds, strict=True))
    result.update(
        ratio_paired_median=round(statistics.median(paired), 3),
        ratio_paired=[round(r, 3) for r in paired],
    )
    rate = {label: args.files / statistics.median(meter.seconds) for label, meter, _run in sides}
    ratio, ratio_wide = (
        rate["uploader"] / rate[f"plain x{workers}"],
        rate["uploader"] / rate[f"plain x{in_flight}"],
    )
    result.update(
        ratio=round(ratio, 3),
        ratio_same_requests_in_flight=round(ratio_wide, 3),
        plain_files_per_s=round(rate[f"plain x{workers}"], 2),  # the keys `python -m bench` reads
        uploader_files_per_s=round(rate["uploader"], 2),
    )
    print(
        "median files/s, and CPU ms per file of this process / of Azurite "
        f"(on the same {os.cpu_count()} cores):"
    )
    for label, meter, _run in sides:
        figures = meter.summary(args.files)
        print(
            f"  {label:10s} {figures['files_per_s']:7.1f} files/s   "
            f"{figures['cpu_ms_per_file']:5.2f} / {figures['azurite_cpu_ms_per_file']:5.2f} ms"
        )
    print(
        f"ratio uploader / plain x{workers} (as many envelopes in flight as plain files) = {ratio:.2f} "
        f"(target >= 0.9)"
    )
    print(
        f"ratio per round, uploader / the plain x{workers} round beside it: median "
        f"{statistics.median(paired):.2f} ({paired[0]:.2f}-{paired[-1]:.2f})"
    )
    print(f"ratio uploader / plain x{in_flight} (twice as many uploads in flight) = {ratio_wide:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
