"""``edgeloop demo``: run the closed loop locally on the built-in digits drift scenario."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from edgeloop.errors import EdgeLoopError
from edgeloop_demo.scenario import DRIFT_KINDS


def _repo_root() -> Path:
    """The checkout holding deployment.template.json: the current folder or the package's."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (candidate / "deployment.template.json").is_file() and (candidate / "modules").is_dir():
            return candidate
    raise EdgeLoopError(
        "run 'edgeloop demo' from an EdgeLoop checkout (deployment.template.json and modules/ not found)"
    )


def _run(args: argparse.Namespace) -> int:
    from edgeloop_demo.report import write_plot
    from edgeloop_demo.run import DemoOptions, DemoRun, prepare_state_dir

    state_dir = Path(args.state_dir)
    try:
        prepare_state_dir(state_dir)
        opts = DemoOptions(
            state_dir=state_dir.resolve(),
            repo_root=_repo_root(),
            quick=args.quick,
            seed=args.seed,
            drift=args.drift,
            severity=args.severity,
            budget=args.budget,
            fps=args.fps,
            bind=args.bind,
            timeout_s=args.timeout,
        )
        _log_to(state_dir / "demo.log")
        report = DemoRun(opts).run()
    except EdgeLoopError as exc:
        print(f"edgeloop demo: {exc}")
        return 1
    report_path = Path(args.report) if args.report else state_dir / "report.json"
    plot_path = Path(args.plot) if args.plot else report_path.with_suffix(".png")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_plot(report, plot_path)
    print(f"report: {report_path}\nplot:   {plot_path}\nlogs:   {state_dir / 'logs'} (one file a module)")
    return 0


def _log_to(path: Path) -> None:
    from edgeloop.logs import JsonFormatter

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter("demo"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the closed loop locally on the digits drift scenario",
        description=(
            "Capture a drifting stream of digits, score it, select uncertain frames within a "
            "budget, upload them encrypted to Azurite, label them, retrain, gate, promote and "
            "roll the new model out to the inference module; then report before/after figures."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="a shorter stream (finishes in ~3 minutes)")
    parser.add_argument("--state-dir", default=".edgeloop/demo", help="work folder (default .edgeloop/demo)")
    parser.add_argument("--report", help="JSON report path (default STATE_DIR/report.json)")
    parser.add_argument("--plot", help="PNG plot path (default beside the report)")
    parser.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    parser.add_argument(
        "--budget", type=int, help="samples the filter may select (default 15%% of the stream)"
    )
    parser.add_argument("--drift", choices=DRIFT_KINDS, default="mixed", help="kind of drift (default mixed)")
    parser.add_argument(
        "--severity",
        choices=("mild", "medium", "severe"),
        default="severe",
        help="drift severity (default severe: the initial model's augmentations absorb most milder drift)",
    )
    parser.add_argument("--fps", type=float, help="capture rate (default 15 with --quick, else 8)")
    parser.add_argument("--bind", default="127.0.0.1", help="loopback address of the dev hub")
    parser.add_argument("--timeout", type=float, help="stop driving the loop after this many seconds")
    parser.set_defaults(func=_run)
