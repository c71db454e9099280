"""``polygraft serve`` under load: N concurrent clients on loopback, with and without micro-batching, PyTorch and
ONNX Runtime, for a text, an image and an audio model.

For each backend (``pytorch``, ``onnx``) and each batching setting (``--max-batch 1``: one request at a time;
``--max-batch 16 --max-wait-ms 10``), one ``polygraft serve`` process is started on a free 127.0.0.1 port serving
every run given (one model thread each, ``--threads 1``). For each model, ``--clients`` asyncio clients (httpx)
each send requests one after another (JSON text, or a multipart PNG / WAV made from the run's own test examples)
until ``--seconds`` have passed or ``--max-requests`` were sent in all; the first ``--warmup`` requests are not
counted. Printed: requests/s, latency p50 and p99, and the speed-up of micro-batching over batch-1 serving measured
in the same run. The load is bounded in count and time and goes only to the loopback address.

Run:
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/serve.py text=runs/sentiment image=runs/digits \\
        audio=runs/spoken_digits_whisper --clients 16 --seconds 10 --json runs/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"batch-1": ["--max-batch", "1"], "micro-batched": ["--max-batch", "16", "--max-wait-ms", "10"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _payloads(run: Path, count: int = 32) -> list[dict[str, Any]]:
    """httpx request keyword arguments made from the run's test (else val) examples."""
    import numpy as np

    import polygraft
    from polygraft.recipe import Recipe, load_split
    from polygraft.run import RunDirectory

    directory = RunDirectory(run, enabled=False)
    recipe = Recipe.from_dict(directory.read_config(), where=str(directory.config_file))
    data = load_split(recipe, "test" if "test" in recipe.data else "val", polygraft.build_catalog())
    payloads = []
    for index in range(min(count, len(data))):
        example = data[index]
        if "text" in example:
            payloads.append({"json": {"text": example["text"]}})
        elif "image" in example:
            image = example["image"]
            if isinstance(image, str | Path):
                payloads.append({"files": {"file": (Path(image).name, Path(image).read_bytes())}})
            else:
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG")
                payloads.append({"files": {"file": ("image.png", buffer.getvalue(), "image/png")}})
        elif "audio" in example:
            audio = example["audio"]
            if isinstance(audio, str | Path):
                payloads.append({"files": {"file": (Path(audio).name, Path(audio).read_bytes(), "audio/wav")}})
            else:
                import soundfile

                buffer = io.BytesIO()
                soundfile.write(buffer, np.asarray(audio, dtype=np.float32), int(example["sample_rate"]), format="WAV")
                payloads.append({"files": {"file": ("clip.wav", buffer.getvalue(), "audio/wav")}})
    return payloads


async def _counts(client: Any, url: str) -> tuple[int, int]:
    """(batches, examples) the server has run for the model at ``url`` so far."""
    name = url.rstrip("/").split("/")[-2]
    models = (await client.get(url.split("/v1/")[0] + "/v1/models")).json()["models"]
    row = next(m for m in models if m["name"] == name)
    return int(row["batches"]), int(row["examples"])


async def _load(url: str, payloads: list[dict[str, Any]], *, clients: int, seconds: float, max_requests: int,
                warmup: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as client:
        for payload in payloads[:warmup]:
            (await client.post(url, **payload)).raise_for_status()
        start = time.perf_counter()

        async def worker(offset: int) -> None:
            nonlocal errors, sent
            index = offset
            while time.perf_counter() - start < seconds and sent < max_requests:
                sent += 1
                began = time.perf_counter()
                response = await client.post(url, **payloads[index % len(payloads)])
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1
                index += clients

        before = await _counts(client, url)
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
        after = await _counts(client, url)
    ordered = sorted(latencies)
    batches = after[0] - before[0]
    return {"requests": len(latencies), "errors": errors, "seconds": elapsed,
            "mean_batch": (after[1] - before[1]) / batches if batches else None,
            "requests_per_s": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(ordered) if ordered else None,
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else None}


def _serve(models: list[str], backend: str, setting: list[str], port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        str(ROOT / p) for p in ("core", "plugins/text", "plugins/vision", "plugins/speech"))}
    command = [sys.executable, "-m", "polygraft", "serve", *models, "--backend", backend, "--port", str(port),
               "--threads", "1", *setting]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_healthy(port: int, process: subprocess.Popen[bytes], limit: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"polygraft serve exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError("polygraft serve did not become healthy in time")


def model_side(models: list[str], repeats: int) -> None:
    """Prepare time per request and model time per example at batch 1 and 16, PyTorch and ONNX Runtime."""
    import torch

    from polygraft.serve.backends import load_backend
    from polygraft.serve.requests import read_upload

    torch.set_num_threads(1)
    print("| model | backend | prepare ms/request | model ms/example, batch 1 | batch 16 | batching gain |")
    print("|---|---|---|---|---|---|")
    for item in models:
        name, _, run = item.partition("=")
        request = _payloads(Path(run), 1)[0]
        for kind in ("pytorch", "onnx"):
            backend = load_backend(run, backend=kind)
            start = time.perf_counter()
            if "json" in request:
                items = [backend.prepare(request["json"]) for _ in range(16)]
            else:
                filename, data = request["files"]["file"][:2]
                items = [backend.prepare(read_upload(backend, data, filename)) for _ in range(16)]
            prepare = (time.perf_counter() - start) / 16
            backend.predict(items[:2])
            single, batched = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                for index in range(16):
                    backend.predict(items[index:index + 1])
                single.append((time.perf_counter() - start) / 16)
                start = time.perf_counter()
                backend.predict(items)
                batched.append((time.perf_counter() - start) / 16)
            one, many = statistics.mean(single), statistics.mean(batched)
            print(f"| {name} | {kind} | {1000 * prepare:.1f} | {1000 * one:.1f} | {1000 * many:.1f} | {one / many:.2f}x |",
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="NAME=RUN for each model (e.g. text=runs/sentiment)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound per model and setting")
    parser.add_argument("--max-requests", type=int, default=2000, help="request bound per model and setting")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--backends", default="pytorch,onnx")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model-side", action="store_true", help="measure batching inside the model only (no HTTP)")
    parser.add_argument("--repeats", type=int, default=3, help="with --model-side")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT / p) for p in ("core", "plugins/text", "plugins/vision", "plugins/speech")]
    if args.model_side:
        print(f"load average {os.getloadavg()[0]:.2f}; 1 thread")
        model_side(args.models, args.repeats)
        return 0
    payloads = {item.partition("=")[0]: _payloads(Path(item.partition("=")[2])) for item in args.models}
    results = []
    load = os.getloadavg()[0]
    for backend in args.backends.split(","):
        for setting, flags in SETTINGS.items():
            port = _free_port()
            process = _serve(args.models, backend, flags, port)
            try:
                _wait_healthy(port, process)
                for name, requests in payloads.items():
                    url = f"http://127.0.0.1:{port}/v1/models/{name}/predict"
                    row = asyncio.run(_load(url, requests, clients=args.clients, seconds=args.seconds,
                                            max_requests=args.max_requests, warmup=args.warmup))
                    results.append({"model": name, "backend": backend, "setting": setting, **row})
                    print(json.dumps(results[-1]), flush=True)
            finally:
                process.terminate()
                process.wait(timeout=30)
    print(f"\nload average before {load:.2f}, after {os.getloadavg()[0]:.2f}; {args.clients} clients")
    print("| model | backend | serving | requests/s | p50 ms | p99 ms | mean batch | micro-batching speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for row in results:
        base = next(r for r in results if r["model"] == row["model"] and r["backend"] == row["backend"]
                    and r["setting"] == "batch-1")
        speedup = row["requests_per_s"] / base["requests_per_s"] if base["requests_per_s"] else float("nan")
        print(f"| {row['model']} | {row['backend']} | {row['setting']} | {row['requests_per_s']:.1f} | "
              f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['mean_batch'] or 0:.1f} | {speedup:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
