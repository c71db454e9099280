"""``polygraft export | serve``: argument parsing here, work in :mod:`polygraft.export` and :mod:`polygraft.serve`.

Heavy libraries (onnx, onnxruntime, transformers, fastapi, uvicorn) are imported inside the handlers.

Example:
    $ polygraft export runs/sentiment --format onnx --quantize int8
    $ polygraft export runs/digits --format timm --output shared/digits-timm
    $ polygraft serve runs/sentiment runs/digits --backend onnx --port 8000
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def cmd_export(args: argparse.Namespace) -> int:
    from polygraft.export import export_model

    result = export_model(args.run_dir, args.format, args.output, quantize=args.quantize)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return 0
    print(f"wrote {result.directory} ({args.format})")
    for check in result.report.get("checks", []):
        print(f"  checked: {check}")
    files = sorted(p.name for p in result.directory.iterdir())
    print(f"  files: {', '.join(files)}")
    return 0


def _named_sources(items: list[str]) -> list[tuple[str | None, str]]:
    """``RUN`` or ``NAME=RUN``."""
    named = []
    for item in items:
        name, sep, path = item.partition("=")
        named.append((name, path) if sep and name and "/" not in name else (None, item))
    return named


def cmd_serve(args: argparse.Namespace) -> int:
    from polygraft.errors import ConfigError
    from polygraft.serve.app import run_server
    from polygraft.serve.backends import load_backend
    from polygraft.serve.settings import ServeSettings

    settings = ServeSettings(host=args.host, port=args.port, backend=args.backend, int8=args.int8,
                             max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, timeout_s=args.timeout,
                             max_upload_mb=args.max_upload_mb, threads=args.threads)
    backends = [load_backend(path, name=name, backend=settings.backend, threads=settings.threads, int8=settings.int8)
                for name, path in _named_sources(args.runs)]
    names = [backend.name for backend in backends]
    clash = sorted({name for name in names if names.count(name) > 1})
    if clash:
        raise ConfigError(f"two runs would both be served as {clash[0]!r}; name them: polygraft serve a={clash[0]} ...")
    print(f"serving {', '.join(names)} ({settings.backend}) on http://{settings.host}:{settings.port}/ "
          f"(API docs at /docs); max batch {settings.max_batch}, max wait {settings.max_wait_ms:g} ms")
    run_server(backends, settings)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``export`` and ``serve`` on the main parser's subparsers."""
    p = sub.add_parser("export", help="export a trained run: ONNX, a Hugging Face or a timm directory (+ model card)",
                       description="Write the run's model in a format other tools load with their own loaders, "
                                   "check it against PyTorch, and write a model card beside it.")
    p.add_argument("run_dir", metavar="RUN", help="a run directory (or its model/ folder)")
    p.add_argument("--format", default="onnx", help="onnx (every task), hf (transformers' own classes), timm "
                   "(timm image classifiers); default onnx")
    p.add_argument("--output", metavar="DIR", help="where to write (default RUN/exports/FORMAT)")
    p.add_argument("--quantize", choices=["int8"], help="also write an int8 ONNX graph (dynamic quantisation)")
    p.add_argument("--json", action="store_true", help="print the export report as JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve trained runs over HTTP with a web page (FastAPI on 127.0.0.1)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories, or NAME=RUN to pick the model's name")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", choices=["pytorch", "onnx"], default="pytorch",
                   help="run models with PyTorch or their exported ONNX graph in ONNX Runtime (exported if needed)")
    p.add_argument("--int8", action="store_true", help="with --backend onnx: the int8-quantised graph")
    p.add_argument("--max-batch", type=int, default=16, help="most examples run together (1 = no micro-batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request gets 504")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="larger request bodies get 413")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per model")
    p.set_defaults(func=cmd_serve)
