"""``edgeloop demo`` comes from the demo package: offered when it is installed, absent (and the
rest of the CLI intact) when it is not."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT, subprocess_env


def _help(pythonpath: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith('__editable__')]\n"
        # The project's editable install can find the demo by itself: without "demo" on the path,
        # refuse it as an environment without the package would.
        + (
            ""
            if "demo" in pythonpath
            else "sys.modules['edgeloop_demo'] = None\n"  # import fails, find_spec gives None
        )
        + "from edgeloop.cli import main\n"
        f"sys.exit(main({list(args)!r}))\n"
    )
    env = subprocess_env({"PYTHONPATH": ":".join(str(REPO_ROOT / p) for p in pythonpath)})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


SOURCES = ["src", "cloud", "modules/filter"]


def test_the_demo_command_is_offered_with_the_demo_package() -> None:
    done = _help([*SOURCES, "demo"], "demo", "--help")
    assert done.returncode == 0, done.stderr
    assert "--severity" in done.stdout


def test_without_the_demo_package_the_cli_works_and_offers_no_demo() -> None:
    helped = _help(SOURCES, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "schemas" in helped.stdout
    demo = _help(SOURCES, "demo")
    assert demo.returncode == 2
    assert "invalid choice: 'demo'" in demo.stderr
