"""``polygraft explain RUN INPUT``: why did the model predict that? Attribution maps for text, images and audio.

Heavy libraries (torch, captum, pytorch-grad-cam, matplotlib) are imported inside the handler.

Example:
    $ polygraft explain runs/sentiment "an unexpectedly moving story"          # HTML page + JSON
    $ polygraft explain runs/shapes photo.png --method integrated-gradients --target circle
    $ polygraft explain runs/spoken_digits clip.wav --json
    $ polygraft explain runs/fused --field photo=cat.png --field caption="a cat" --method modality-shapley
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _human(explanation: Any) -> str:
    lines = [f"{explanation.input}: {_said(explanation.prediction)} — {explanation.method} "
             f"(methods that apply: {', '.join(explanation.methods)})"]
    if not explanation.attributions:
        lines.append("  nothing to explain: the model predicted no output here (no box above the score "
                     "threshold, an empty transcript)")
    for attribution in explanation.attributions:
        row = attribution.summary(top=5)
        if "top" in row:
            where = "top: " + ", ".join(f"{name} {score:+.3f}" for name, score in sorted(
                row["scores"], key=lambda item: -item[1])[:5])
        else:
            where = f"peak at {tuple(row['peak'])} of a {tuple(row['shape'])} map"
        check = ""
        if attribution.completeness:
            report = attribution.completeness
            cost = f"{report['passes']} forward passes" if "passes" in report else f"{report['steps']} steps"
            check = (f"; completeness delta {report['relative_delta']:.2%} of f(x)-f(baseline) "
                     f"({'ok' if report['within_tolerance'] else 'NOT within'} {report['tolerance']:.0%}, {cost})")
        lines.append(f"  {attribution.target}: {where}{check} [{attribution.seconds:.2f} s]")
        lines.extend(f"    note: {note}" for note in attribution.notes)
    lines.extend(f"  wrote {path}" for path in explanation.files)
    return "\n".join(lines)


def _said(prediction: dict[str, Any]) -> str:
    if "label" in prediction:
        return f"{prediction['label']} ({prediction.get('score', 0):.3f})"
    if "transcript" in prediction:
        return repr(prediction["transcript"])
    if "boxes" in prediction:
        return f"{len(prediction['boxes'])} boxes"
    return ", ".join(prediction.get("tags", []))


def cmd_explain(args: argparse.Namespace) -> int:
    import polygraft
    from polygraft.cli_run import parse_fields
    from polygraft.errors import ConfigError
    from polygraft.explain import Settings, explain, render

    if args.steps is not None and args.steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {args.steps}")
    fields = parse_fields(args.field or [])
    if not args.inputs and not fields:
        raise ConfigError("give something to explain: inputs as arguments or --field NAME=VALUE")
    task = polygraft.load(args.run_dir)
    if not hasattr(task, "head"):
        raise ConfigError(f"{args.run_dir} is a pretraining run (a backbone without a task); explain a fine-tuned run")
    output = Path(args.output) if args.output else Path(args.run_dir) / "explanations"
    settings = Settings(steps=args.steps, max_steps=max(256, args.steps or 0))
    results = []
    for value in args.inputs:
        explanation = explain(task, value, method=args.method, target=args.target, settings=settings)
        render(explanation, output)
        results.append(explanation)
    if fields:  # one example made of named fields, read as `polygraft predict --field` reads it
        example = task.backbone.preprocessor.read_fields(fields)
        explanation = explain(task, example, method=args.method, target=args.target, settings=settings)
        explanation.input = json.dumps(fields)
        render(explanation, output)
        results.append(explanation)
    if args.json:
        rows = [result.to_dict() for result in results]
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2, default=str))
    else:
        print("\n".join(_human(result) for result in results))
    return 0


def add_commands(sub: Any) -> None:
    """Register ``explain`` on the main parser's subparsers."""
    p = sub.add_parser("explain", help="attribution maps: which words, pixels or sounds made a trained run "
                       "predict what it did", description="Explain a trained run's prediction for one input: text "
                       "gets an HTML page of highlighted words, images and audio PNG overlays, every input a JSON "
                       "file. Integrated Gradients reports its completeness check with every explanation.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="what `polygraft predict` accepts: a text, an image or "
                   "audio path, a JSON vector, a JSON object of a fused model's fields...")
    p.add_argument("--field", action="append", metavar="NAME=VALUE",
                   help="one example made of named fields (a fused model's photo and caption...), as for predict")
    p.add_argument("--method", metavar="NAME", help="integrated-gradients (ig), gradcam, occlusion; for fusion "
                   "models also modality-ablation and modality-shapley (each branch's contribution); default: the "
                   "best that applies (text, audio: integrated-gradients; images: gradcam; backbones that declare "
                   "no attribution hooks: occlusion)")
    p.add_argument("--target", metavar="LABEL", help="the class to explain (default: the predicted one); for tags, "
                   "characters and boxes, keep only the outputs with this label")
    p.add_argument("--output", metavar="DIR", help="where the HTML/PNG/JSON files go (default: RUN/explanations)")
    p.add_argument("--steps", type=int, metavar="N", help="Integrated Gradients' first step count (default 32, "
                   "doubled until completeness holds within 5%%)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=cmd_explain)
