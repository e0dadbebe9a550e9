"""nbkube installed the way a user (or Binder's postBuild) installs it: `pip install .`, not editable,
into a fresh virtual environment, from a copy of this checkout.

Shared by tests/test_binder.py and tests/cli/test_cli_installed.py. Offline by construction: no
package index, no dependencies, no build isolation; the dependencies and setuptools come from the
interpreter running the tests, whose site-packages the new environment sees through a `.pth` line
(paths named there are appended after the environment's own site-packages, and `.pth` files inside
them are not run, so the test interpreter's own nbkube, editable or not, never shadows the install).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 600  # a loaded 2-core machine builds the wheel in ~30 s


def copy_checkout(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) copied to `dest`, modes kept: what Binder
    copies into the image, and a build that cannot leave build/ or *.egg-info in the checkout."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if not src.is_file():  # deleted in the worktree but still in the index
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


def fresh_venv(dest: Path) -> Path:
    """A new virtual environment (no pip of its own) that borrows the test interpreter's packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True, timeout=120)
    python = dest / "bin" / "python"
    (site_packages(python) / "_nbk_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus what would point Python at this checkout (PYTHONPATH), offline pip."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        PIP_NO_INDEX="1",
        PIP_NO_DEPS="1",
        # pip reads this switch inverted: "0" turns build isolation off (setuptools from site-packages)
        PIP_NO_BUILD_ISOLATION="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
    )
    env.update(extra)
    return env


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    ).stdout.strip()
    return Path(out)
