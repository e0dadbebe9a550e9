"""Drive a real JupyterLab in headless Chromium (Playwright): open a notebook, run all cells.

Used by `test_browser.py`. The browser is Debian's `chromium` (no browser download: Playwright only
supplies its driver), started with the flags this machine's closed network needs. JupyterLab runs
on loopback with a random token and `expose_app_in_browser`, so the test can call Lab commands
(`notebook:run-all-cells`) instead of clicking through menus.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: str

    def log_tail(self, lines: int = 40) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])


@contextmanager
def jupyterlab(root_dir: str, timeout: float = 60.0) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 serving `root_dir`; stopped (with its kernels) on exit."""
    port = _free_port()
    token = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="nbkube-lab-")
    log_path = os.path.join(workdir, "lab.log")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": os.path.join(workdir, "config"),
        "JUPYTER_RUNTIME_DIR": workdir,
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={port}",
                f"--ServerApp.token={token}",
                f"--ServerApp.root_dir={root_dir}",
                "--LabApp.expose_app_in_browser=True",
                "--ServerApp.disable_check_xsrf=True",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, proc, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{lab.log_tail()}") from None
                time.sleep(0.3)
        yield lab
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


def run_all_cells(page, lab: Lab, notebook: str, timeout_ms: int) -> None:  # type: ignore[no-untyped-def]
    """Open `notebook` (a path under the server's root) and run every cell."""
    page.goto(f"{lab.url}/lab/tree/{notebook}?token={lab.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout_ms)
    # The kernel must be up before "run all" or the request is dropped.
    page.wait_for_selector(".jp-Notebook", timeout=timeout_ms)
    # A notebook without kernel metadata asks which kernel to start: take the default.
    select = page.locator(".jp-Dialog button.jp-mod-accept")
    with contextlib.suppress(Exception):
        select.wait_for(state="visible", timeout=3000)
        select.click()
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            return w && w.sessionContext && w.sessionContext.session &&
                   w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle';
        }""",
        timeout=timeout_ms,
    )
    # "run all" sent while Lab still settles the new session can be dropped without a word: send it
    # again (at most 3 times) until the first cell has started
    started = """() => {
        const w = window.jupyterapp.shell.currentWidget;
        const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
        return (kernel && kernel.status === 'busy') ||
               w.content.widgets.some(c => c.model.type === 'code' && c.model.executionCount !== null);
    }"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(started, timeout=30_000, polling=200)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def wait_until_all_ran(page, timeout_ms: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until every code cell of the open notebook has run (an execution count) and the kernel
    is idle: the end of "run all"."""
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            if (!w || !w.content || !w.sessionContext.session) return false;
            const kernel = w.sessionContext.session.kernel;
            if (!kernel || kernel.status !== 'idle') return false;
            const cells = w.content.widgets.filter(c => c.model.type === 'code');
            return cells.length > 0 && cells.every(c => c.model.executionCount !== null);
        }""",
        timeout=timeout_ms,
        polling=500,
    )


def output_problems(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Text of every stderr stream and error shown in the notebook's outputs (empty when clean)."""
    outputs = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    )
    return [t for t in outputs.all_inner_texts() if t.strip()]


def run_in_kernel(page, code: str, timeout_ms: int = 60_000) -> None:  # type: ignore[no-untyped-def]
    """Run `code` in the open notebook's kernel (no cell, no output), as another cell would."""
    page.evaluate(
        """async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            const future = kernel.requestExecute({code, silent: false, store_history: false});
            const reply = await future.done;
            if (reply.content.status !== 'ok') {
                throw new Error(reply.content.ename + ': ' + reply.content.evalue);
            }
        }""",
        code,
    )
