"""Server settings (CLI flags of ``polygraft serve``).

Example:
    >>> from polygraft.serve.settings import ServeSettings
    >>> ServeSettings(max_batch=8).max_upload_bytes
    20971520
"""

from __future__ import annotations

from dataclasses import dataclass

from polygraft.errors import ConfigError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServeSettings:
    """How the server batches, waits and limits.

    Attributes:
        host, port: where uvicorn listens (loopback by default: nothing outside this machine reaches it).
        backend: ``pytorch`` or ``onnx`` (the run's exported graph in ONNX Runtime; exported on first use).
        int8: serve the int8-quantised ONNX graph.
        max_batch: most examples run together (1 = no micro-batching).
        max_wait_ms: how long the first request of a batch waits for others.
        timeout_s: a request that has no answer by then gets 504.
        max_upload_mb: larger request bodies get 413 before they are read.
        threads: intra-op threads per model.
    """

    host: str = LOOPBACK
    port: int = 8000
    backend: str = "pytorch"
    int8: bool = False
    max_batch: int = 16
    max_wait_ms: float = 5.0
    timeout_s: float = 30.0
    max_upload_mb: float = 20.0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_wait_ms < 0 or self.timeout_s <= 0 or self.max_upload_mb <= 0:
            raise ConfigError(f"serve: --max-batch must be >= 1, --max-wait-ms >= 0, --timeout and --max-upload-mb "
                              f"> 0 (got {self.max_batch}, {self.max_wait_ms}, {self.timeout_s}, {self.max_upload_mb})")
        if not 0 <= self.port < 65536 or self.threads < 1:
            raise ConfigError(f"serve: --port must be in 0..65535 and --threads >= 1 (got {self.port}, {self.threads})")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
