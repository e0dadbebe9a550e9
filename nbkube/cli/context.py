"""What every `nbkube` verb handler receives besides its arguments, plus shared argument helpers.

`nbkube.cli.main` builds one `Context` per invocation and hands it to the handler that the command
modules (`cmd_*.py`, written by several helpers) registered. The registry is opened lazily, so
commands that never need the store (`version`, `--help`) never open it, and an unreachable store
fails the one command that needed it with one clear line.
"""

from __future__ import annotations

import argparse
import os
from typing import IO, TYPE_CHECKING, cast

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["Context", "Output", "add_namespace_args", "add_output_arg", "default_store_url", "open_registry"]


def default_store_url() -> str:
    """`sqlite:///<home>/.nbkube/store.db`, creating the folder (the embedded default)."""
    folder = os.path.join(os.path.expanduser("~"), ".nbkube")
    os.makedirs(folder, exist_ok=True)
    return "sqlite://" + os.path.join(os.path.abspath(folder), "store.db")


class Output:
    """A text sink that is callable (`out("line")` prints a line) and file-like (`out.write`)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def __call__(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def open_registry(store_url: str) -> Registry:
    """The registry over `store_url` with the default admission chain and, when the store belongs
    to a cluster folder of this user, that cluster's keys (Secrets encrypted at rest) and agent
    credential (`nbkube.cluster.registry_for_url`)."""
    from nbkube.cluster import registry_for_url

    return registry_for_url(store_url)


class Context:
    """Per-invocation state: the store URL, a lazily opened registry, and the output streams."""

    def __init__(
        self,
        store_url: str,
        *,
        out: Output,
        err: Output,
        store_given: str | None = None,
        kubeconfig: str | None = None,
    ):
        self.store_url = store_url
        # with a kubeconfig every verb goes through the API server, never the store
        self.kubeconfig = kubeconfig
        # what --store or $NBKUBE_STORE said, None when store_url is the built-in default: verbs
        # with a different default (`nbkube up` launches a private etcd, "auto") look at this
        self.store_given = store_given
        self.out = out
        self.err = err
        self._api: Registry | None = None

    @property
    def api(self) -> Registry:
        """The registry over the chosen store (opened on first use, closed by `main`)."""
        if self._api is None:
            if self.kubeconfig:
                from nbkube.client.kubeconfig import load_kubeconfig
                from nbkube.client.rest import RestClient

                self._api = cast("Registry", RestClient(load_kubeconfig(self.kubeconfig)))
            else:
                self._api = open_registry(self.store_url)
        return self._api

    @property
    def opened(self) -> bool:
        return self._api is not None

    def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            api.close()


def add_namespace_args(parser: argparse.ArgumentParser, *, all_namespaces: bool = True) -> None:
    """`-n/--namespace NS` (default "default") and, optionally, `-A/--all-namespaces`."""
    parser.add_argument("-n", "--namespace", default=None, metavar="NS", help='namespace (default "default")')
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")


def add_output_arg(
    parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("wide", "yaml", "json", "name")
) -> None:
    parser.add_argument("-o", "--output", choices=choices, default=None, help="output format")
