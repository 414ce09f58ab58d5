"""The demo's closing figures: model accuracy before and after, what was uploaded against what
was captured, a check that every uploaded sample decrypts, a table and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeloop_demo.rounds import round_line
from edgeloop_demo.scenario import Scenario, Split


def _items(split: Split, names: list[str], mask: np.ndarray | None = None) -> list[Any]:
    from edgeloop_cloud.gate import EvalItem

    idx = np.flatnonzero(mask) if mask is not None else np.arange(len(split))
    return [EvalItem(split.frames[i], names[int(split.labels[i])]) for i in idx]


def evaluate_models(svc: Any, scenario: Scenario, versions: dict[str, str]) -> dict[str, Any]:
    """Accuracy of each named registry version on the drifted part of the stream, the drifted
    test set and the clean hold-out."""
    from edgeloop_cloud.gate import evaluate

    names = scenario.class_names
    sets = {
        "drifted_stream": _items(scenario.stream, names, scenario.stream.drifted),
        "drifted_test": _items(scenario.test, names),
        "clean_holdout": _items(scenario.holdout, names),
    }
    out: dict[str, Any] = {}
    for role, version in versions.items():
        model = svc.registry.read_model(svc.config.model_name, version)
        scores = {}
        for set_name, items in sets.items():
            result = evaluate(model, items, repeats=1)
            scores[set_name] = round(result.accuracy, 4) if result.loaded else None
        out[role] = {"version": version, "accuracy": scores}
    return out


def decrypt_check(svc: Any) -> dict[str, Any]:
    """Download and open every uploaded sample with the private key; count what fails."""
    from edgeloop_cloud.pipeline import take_inventory
    from edgeloop_cloud.samples import fetch_plaintext

    inventory = take_inventory(svc)
    sizes = {info.name: info.size for info in svc.data.list("")}
    ok, failures, plain, cipher = 0, [], 0, 0
    for sample_id, ref in sorted(inventory.samples.items()):
        try:
            plaintext = fetch_plaintext(svc.data, ref, svc.opener)
        except Exception as exc:
            failures.append({"sample_id": sample_id, "reason": str(exc)})
            continue
        ok += 1
        plain += len(plaintext)
        cipher += sizes.get(ref.blob_name, 0)
    samples = len(inventory.samples)
    return {
        "samples": samples,
        "ok": ok,
        "failures": failures,
        "plaintext_bytes": plain,
        "ciphertext_bytes": cipher,
        "mean_plaintext_bytes": plain / ok if ok else 0.0,
    }


def accuracy_table(report: dict[str, Any]) -> str:
    """The closing table as text."""
    models = report["models"]
    c = report["counts"]
    initial, final = f"initial {models['initial']['version']}", f"final {models['final']['version']}"
    rows = [f"{'accuracy':<22}{initial:>16}{final:>16}"]
    for set_name in ("drifted_stream", "drifted_test", "clean_holdout"):
        before = models["initial"]["accuracy"][set_name]
        after = models["final"]["accuracy"][set_name]
        rows.append(f"{set_name:<22}{_pct(before):>16}{_pct(after):>16}")
    share = c["uploaded"] / c["captured"] if c["captured"] else 0.0
    rows += [
        "",
        f"captured {c['captured']}  scored {c['scored']}  selected {c['selected']}  "
        f"uploaded {c['uploaded']} ({share:.1%} of captured, {c['uploaded_bytes'] / 1024:.0f} KiB encrypted)",
        f"every uploaded sample decrypts: {report['decrypt']['ok']}/{report['decrypt']['checked']}",
        "rounds (labels used, the gate's decision on the audit share, field accuracy of the deployed model):",
    ]
    rows += [f"  {round_line(r)}" for r in report["rounds"]]
    rows.append(f"inference module reports: {report['inference_reports']}")
    before, after = models["initial"]["accuracy"]["drifted_test"], models["final"]["accuracy"]["drifted_test"]
    change = "" if before is None or after is None else f" ({(after - before) * 100:+.1f} points)"
    rows.append(f"drifted test set: {initial} {_pct(before)} -> {final} {_pct(after)}{change}")
    return "\n".join(rows)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def write_plot(report: dict[str, Any], path: Path) -> Path:
    """A PNG: accuracy before/after on each set, and samples uploaded against captured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
    sets = ["drifted_stream", "drifted_test", "clean_holdout"]
    before = [models["initial"]["accuracy"][s] or 0.0 for s in sets]
    after = [models["final"]["accuracy"][s] or 0.0 for s in sets]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(sets))
    left.bar(x - 0.2, before, 0.4, label=f"initial {models['initial']['version']}")
    left.bar(x + 0.2, after, 0.4, label=f"final {models['final']['version']}")
    left.set_xticks(x, [s.replace("_", " ") for s in sets])
    left.set_ylim(0, 1)
    left.set_ylabel("accuracy")
    left.set_title("Model accuracy before and after the loop")
    left.legend()
    c = report["counts"]
    labels = ["captured", "scored", "selected", "uploaded"]
    right.bar(labels, [c[k] for k in labels], color=["#888", "#6a9", "#e94", "#36c"])
    right.set_title(f"Samples (uploaded {c['uploaded_bytes'] / 1024:.0f} KiB encrypted)")
    for i, key in enumerate(labels):
        right.text(i, c[key], str(c[key]), ha="center", va="bottom")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
