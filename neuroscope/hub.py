"""Whether the Hugging Face Hub can be reached from here: one answer for models and prompt sets."""

from __future__ import annotations

import threading

from neuroscope.config import hub_offline  # noqa: F401  (re-exported: where the hub questions are answered)


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the hub's name resolves within ``timeout`` seconds.

    Without this check an offline machine spends ~30 s in the hub client's retries before the
    cached-files error; with it, an unreachable hub falls straight to the local cache.
    """
    import socket

    result: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])
