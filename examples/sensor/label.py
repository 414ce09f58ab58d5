"""Label the uploaded sensor samples from the log's truth file, as a person with the notes would.

    python label.py TRUTH.csv OUT.csv
    edgeloop cloud label import OUT.csv

Reads every sample in the data container (``EDGELOOP_STORAGE_CONNECTION_STRING``), opens it with
the envelope private key (``EDGELOOP_SAMPLE_KEYS``), finds the log line it came from (the
``line`` attribute capture gave it) and writes a ``sample_id,label`` row for each sample not
labelled yet to OUT.csv, the CSV that ``edgeloop cloud label import`` reads.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

from edgeloop_cloud.labels import load_labels
from edgeloop_cloud.opener import EnvelopeOpener
from edgeloop_cloud.samples import fetch_plaintext, find_samples

from edgeloop.blobstore import AzureContainer, BlobContainer


def truth_by_line(path: Path) -> dict[str, str]:
    """The true class of each log line (``data.py stream`` writes the file)."""
    with path.open(encoding="utf-8", newline="") as fin:
        return {row["line"]: row["label"] for row in csv.DictReader(fin)}


def label_samples(data: BlobContainer, opener: EnvelopeOpener, truth: dict[str, str], *, out: Path) -> int:
    """Write labels for the samples not labelled yet to ``out`` (CSV); returns how many."""
    done = set(load_labels(data).labels)
    rows = []
    for ref in find_samples(data):
        if ref.sample_id in done:
            continue
        doc = json.loads(fetch_plaintext(data, ref, opener))
        line = str(doc.get("attributes", {}).get("line", ""))
        if line in truth:
            rows.append((ref.sample_id, truth[line]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fout:
        writer = csv.writer(fout)
        writer.writerow(("sample_id", "label"))
        writer.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("truth", type=Path, help="the truth file data.py wrote beside the log")
    parser.add_argument("out", type=Path, help="the CSV to write, for edgeloop cloud label import")
    parser.add_argument("--container", default="data")
    args = parser.parse_args(argv)
    data = AzureContainer.from_connection_string(
        os.environ["EDGELOOP_STORAGE_CONNECTION_STRING"], args.container
    )
    opener = EnvelopeOpener.from_files([Path(p) for p in os.environ["EDGELOOP_SAMPLE_KEYS"].split(",")])
    count = label_samples(data, opener, truth_by_line(args.truth), out=args.out)
    print(f"labelled {count} samples in {args.out}; next: edgeloop cloud label import {args.out}")


if __name__ == "__main__":
    main()
