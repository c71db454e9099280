"""``POST /v1/models/{name}/explain``: one input's explanation (``polygraft explain``) beside its prediction.

The served model's PyTorch task is explained (for an ONNX backend too: attributions need gradients) with
:func:`polygraft.explain.explain`; the answer is :meth:`Explanation.to_dict` without server paths, plus the
figure ``polygraft explain`` draws (overlay on the image or spectrogram, band over the clip, bars for vectors) as a
``data:`` PNG for kinds other than text, whose page draws the ``(word, score)`` pairs itself.

Example:
    >>> import polygraft, tempfile
    >>> from polygraft.model_io import save_model
    >>> from polygraft.serve.backends import load_backend
    >>> from polygraft.serve.explaining import explain_example
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["no", "yes"],
    ...                              backbone_options={"in_features": 2})
    >>> backend = load_backend(save_model(task, tempfile.mkdtemp()), name="toy")
    >>> answer = explain_example(backend, {"x": [0.5, 1.0]}, method=None, target=None)
    >>> answer["method"], len(answer["explanations"][0]["scores"]), answer["figure"][:22]
    ('occlusion', 2, 'data:image/png;base64,')
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def explain_example(backend: Any, example: Mapping[str, Any], *, method: str | None,
                    target: str | None) -> dict[str, Any]:
    """The explanation of one raw example by ``backend``'s task (errors: :class:`polygraft.errors.PolygraftError`)."""
    import torch

    from polygraft.explain import explain, render

    with backend._lock:  # the same lock as predictions: one model, one thread count at a time
        torch.set_num_threads(backend.threads)
        explanation = explain(backend.task, dict(example), method=method, target=target)
    body = explanation.to_dict()
    body.pop("files", None)  # server paths: never sent
    body["figure"] = None
    if explanation.kind != "tokens" and explanation.attributions:
        with tempfile.TemporaryDirectory() as directory:
            files = render(explanation, directory, stem="upload")
            png = next((Path(f) for f in files if f.endswith(".png")), None)
            if png is not None:
                body["figure"] = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    body["explained_with"] = "pytorch"
    return body


__all__ = ["explain_example"]
