"""``edgeloop filter``: check a policy file, replay it over a prediction log, write its schema.

edgeloop filter check policy.json
edgeloop filter replay policy.json predictions.jsonl [--json]
edgeloop filter schema [--check]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeloop.contracts import Prediction
from edgeloop.errors import ConfigError, ContractError
from edgeloop.runtime.codec import decode
from edgeloop_filter import schema
from edgeloop_filter.engine import Engine
from edgeloop_filter.policy import Policy, parse_policy


def _load_policy(path: str) -> Policy:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc}") from exc
    if isinstance(doc, dict) and "policy" in doc and "strategies" not in doc:
        doc = doc["policy"]  # a twin desired document is accepted too
    return parse_policy(doc)


def _predictions(path: str) -> Iterator[tuple[int, Prediction]]:
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                items = decode(line)
            except ContractError as exc:
                raise ContractError(f"{path}:{number}: {exc}") from exc
            for item in items:
                if isinstance(item, Prediction):
                    yield number, item


def replay(policy: Policy, path: str, *, seed: int = 0) -> dict[str, Any]:
    """Decide every prediction of a JSONL log (one contract or batch per line) at the time it
    was scored (else captured), with fresh budgets."""
    engine = Engine(policy, rng=random.Random(seed))
    start: datetime | None = None
    for _, p in _predictions(path):
        when = p.scored_at or p.frame.captured_at
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        start = start or when
        engine.decide(p, when, (when - start).total_seconds())
    return {
        "version": policy.version,
        "seen": engine.seen,
        "selected_by_strategy": dict(engine.selected),
        "dropped_by_reason": dict(engine.dropped),
        "drift": engine.drift.psi(),
    }


def _check(args: argparse.Namespace) -> int:
    try:
        policy = _load_policy(args.policy)
    except ConfigError as exc:
        print(f"invalid: {exc.reason}")
        return 1
    names = ", ".join(s.name for s in policy.strategies) or "none: selects nothing"
    print(f"valid policy {policy.version!r}; strategies: {names}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    try:
        result = replay(_load_policy(args.policy), args.predictions, seed=args.seed)
    except ConfigError as exc:
        print(f"invalid: {exc.reason}")
        return 1
    except (OSError, ContractError) as exc:
        print(f"cannot read predictions: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"policy {result['version']!r}: {result['seen']} predictions")
    for name, count in result["selected_by_strategy"].items():
        print(f"  selected by {name:20s} {count:8d}")
    for reason, count in result["dropped_by_reason"].items():
        print(f"  dropped, {reason:21s} {count:8d}")
    if result["drift"]:
        print("  drift: " + ", ".join(f"{k}={v:g}" for k, v in result["drift"].items()))
    return 0


def _schema(args: argparse.Namespace) -> int:
    return schema.main(["--out", args.out, *(["--check"] if args.check else [])])


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("filter", help="check and try selection policies offline")
    commands = parser.add_subparsers(dest="filter_command", metavar="COMMAND", required=True)
    check = commands.add_parser("check", help="validate a policy file (or a twin document with 'policy')")
    check.add_argument("policy")
    check.set_defaults(func=_check)
    rep = commands.add_parser("replay", help="what a policy selects from a JSONL log of predictions")
    rep.add_argument("policy")
    rep.add_argument(
        "predictions",
        help="one prediction message per line (a /2 or /1 item, a batch envelope, an edgeloop.predictions/1)",
    )
    rep.add_argument("--seed", type=int, default=0, help="seed for random rules without their own")
    rep.add_argument("--json", action="store_true", help="print the result as JSON")
    rep.set_defaults(func=_replay)
    sch = commands.add_parser("schema", help="write the policy JSON Schema")
    sch.add_argument("--out", default=str(schema.DEFAULT_FILE))
    sch.add_argument("--check", action="store_true", help="fail if the file is not current")
    sch.set_defaults(func=_schema)
