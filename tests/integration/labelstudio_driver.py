"""Drives a running Label Studio through ``label-studio-sdk`` as a project owner and annotator do.

Run by Label Studio's own interpreter (its virtual environment: the SDK's dependencies do not
sit beside the project's pins), so it imports nothing from EdgeLoop. It creates a project from a
labelling config, connects a local-files storage (so local-files image URLs are served), imports
the tasks, answers each task as ``--answers`` says (a JSON object sample id -> list of actions,
each a class to choose or ``"skip"``, applied in order), reads each task's image through the
server as the labelling page does, and writes the project's JSON and CSV exports.

    python labelstudio_driver.py --url URL --token T --config C.xml --tasks tasks.json
        --answers answers.json --local-root DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import requests
from label_studio_sdk import LabelStudio


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--url", "--token", "--config", "--tasks", "--answers", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--local-root")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ls = LabelStudio(base_url=args.url, api_key=args.token)
    project = ls.projects.create(title="edgeloop", label_config=Path(args.config).read_text())
    if args.local_root:
        ls.import_storage.local.create(project=project.id, path=args.local_root, title="edgeloop images")
    tasks = json.loads(Path(args.tasks).read_text())
    ls.projects.import_tasks(id=project.id, request=tasks)
    answers = json.loads(Path(args.answers).read_text())
    images = {}
    session = requests.Session()
    session.headers["Authorization"] = f"Token {args.token}"
    for task in ls.tasks.list(project=project.id):
        sample_id = task.data["sample_id"]
        url = task.data["image"]
        response = session.get(url if url.startswith("http") else args.url + url, timeout=30)
        images[sample_id] = {"status": response.status_code, "size": len(response.content)}
        for action in answers.get(sample_id, []):
            if action == "skip":
                ls.annotations.create(id=task.id, result=[], was_cancelled=True)
                continue
            result = [
                {
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": [action]},
                }
            ]
            ls.annotations.create(id=task.id, result=result)
    for kind, name in (("JSON", "export.json"), ("CSV", "export.csv")):
        data = b"".join(
            ls.projects.exports.download_sync(project.id, export_type=kind, download_all_tasks=True)
        )
        (out / name).write_bytes(data)
    (out / "images.json").write_text(json.dumps(images))


if __name__ == "__main__":
    main()
