// polygraft serve's page: pick a model, send text or a file, show what came back (and, with Explain, why).
// No external scripts.
"use strict";
const $ = (id) => document.getElementById(id);
let models = [];

function current() { return models.find((m) => m.name === $("model").value); }

function showInputs() {
  const model = current();
  if (!model) return;
  $("text-input").hidden = model.input !== "text";
  $("file-input").hidden = !(model.input === "image" || model.input === "audio");
  $("json-input").hidden = model.input !== "json";
  $("file").accept = model.input === "image" ? "image/*" : model.input === "audio" ? "audio/*,.wav,.flac" : "";
  $("about").textContent = `${model.task} on ${model.backbone} (${model.modality}, ${model.backend}); ` +
    `${model.labels.length} labels`;
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderClassification(out, prediction) {
  const top = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 5);
  out.appendChild(el("p", {class: "top-label"}, `${prediction.label} (${(100 * prediction.score).toFixed(1)} %)`));
  for (const [label, p] of top) {
    const row = el("div", {class: "row label-row", "data-label": label});
    row.appendChild(el("span", {class: "name"}, label));
    const track = el("div");
    track.appendChild(el("div", {class: "bar", style: `width: ${(100 * p).toFixed(1)}%`}));
    row.appendChild(track);
    row.appendChild(el("span", {class: "prob"}, p.toFixed(3)));
    out.appendChild(row);
  }
}

function renderEntities(out, prediction, text) {
  const entities = prediction.entities || [];
  const line = el("p", {class: "entities"});
  let at = 0;
  for (const entity of entities.filter((e) => e.start !== undefined)) {
    line.appendChild(document.createTextNode(text.slice(at, entity.start)));
    line.appendChild(el("mark", {title: entity.type}, `${text.slice(entity.start, entity.end)} [${entity.type}]`));
    at = entity.end;
  }
  line.appendChild(document.createTextNode(text.slice(at)));
  out.appendChild(line);
  if (!entities.length) out.appendChild(el("p", {class: "muted"}, "no entities"));
}

function renderDetections(out, prediction, file) {
  const canvas = $("canvas");
  const image = new Image();
  image.onload = () => {
    canvas.width = image.width; canvas.height = image.height; canvas.hidden = false;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0);
    ctx.lineWidth = Math.max(2, image.width / 200); ctx.font = "14px sans-serif";
    prediction.boxes.forEach((box, i) => {
      if (prediction.scores[i] < 0.3) return;
      ctx.strokeStyle = "#e6194b"; ctx.fillStyle = "#e6194b";
      ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
      ctx.fillText(`${prediction.labels[i]} ${prediction.scores[i].toFixed(2)}`, box[0] + 2, box[1] + 14);
    });
  };
  image.src = URL.createObjectURL(file);
  const kept = prediction.scores.filter((s) => s >= 0.3).length;
  out.appendChild(el("p", {class: "detections"}, `${kept} boxes (score ≥ 0.3) of ${prediction.boxes.length}`));
}

function render(model, body, text, file) {
  const out = $("result");
  out.replaceChildren();
  $("canvas").hidden = true;
  const prediction = body.predictions[0];
  if (prediction.probabilities) renderClassification(out, prediction);
  else if (prediction.transcript !== undefined) out.appendChild(el("p", {class: "transcript"}, prediction.transcript));
  else if (prediction.entities) renderEntities(out, prediction, text || "");
  else if (prediction.boxes) renderDetections(out, prediction, file);
  else out.appendChild(el("pre", {}, JSON.stringify(prediction, null, 2)));
  out.appendChild(el("p", {class: "muted"}, `${model.name} · ${body.backend} · ${body.latency_ms} ms`));
  out.dataset.state = "done";
}

function buildRequest(model) {
  let request;
  const text = $("text").value;
  const file = $("file").files[0];
  if (model.input === "text") {
    request = {method: "POST", headers: {"Content-Type": "application/json"},
               body: JSON.stringify({[model.input_key]: text})};
  } else if (model.input === "json") {
    let value;
    try { value = JSON.parse($("json").value); } catch (e) { value = $("json").value; }
    request = {method: "POST", headers: {"Content-Type": "application/json"},
               body: JSON.stringify({[model.input_key]: value})};
  } else {
    const form = new FormData();
    if (file) form.append("file", file);
    request = {method: "POST", body: form};
  }
  return {request, text, file};
}

async function predict(event) {
  event.preventDefault();
  const model = current();
  const out = $("result");
  out.dataset.state = "running";
  out.textContent = "…";
  const {request, text, file} = buildRequest(model);
  try {
    const response = await fetch(`/v1/models/${encodeURIComponent(model.name)}/predict`, request);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    render(model, body, text, file);
  } catch (error) {
    out.replaceChildren(el("p", {class: "error"}, String(error.message || error)));
    out.dataset.state = "error";
  }
}

function shade(score, scale) {  // red: for the explained output, blue: against it
  const alpha = Math.min(1, Math.abs(score) / scale).toFixed(3);
  return score >= 0 ? `rgba(220, 38, 38, ${alpha})` : `rgba(37, 99, 235, ${alpha})`;
}

function renderExplanation(body) {
  const out = $("explanation");
  out.replaceChildren();
  const label = body.prediction && body.prediction.label !== undefined ? ` ${body.prediction.label}` : "";
  out.appendChild(el("p", {class: "top-label"}, `Why${label}: ${body.method}`));
  for (const item of body.explanations.slice(0, 11)) {  // the figure draws the first 11 outputs too
    const block = el("div", {class: "explained"});
    block.appendChild(el("p", {class: "muted target"}, `${item.target}: ${item.explains || "score"}`));
    if (body.kind === "tokens" && item.scores) {
      const scale = Math.max(1e-12, ...item.scores.map((pair) => Math.abs(pair[1])));
      const words = el("p", {class: "words"});
      for (const [word, score] of item.scores) {
        words.appendChild(el("span", {title: score.toFixed(4), "data-score": String(score),
                                      style: `background: ${shade(score, scale)}`}, word));
        words.appendChild(document.createTextNode(" "));
      }
      block.appendChild(words);
    }
    const check = item.completeness;
    if (check && check.relative_delta !== null && check.relative_delta !== undefined) {
      block.appendChild(el("p", {class: "muted completeness"}, `attributions sum to f(x) − f(baseline) within ` +
        `${(100 * check.relative_delta).toFixed(2)} % (${check.steps} steps)`));
    }
    out.appendChild(block);
  }
  if (body.figure) out.appendChild(el("img", {class: "figure", src: body.figure, alt: `${body.method} map`}));
  out.appendChild(el("p", {class: "muted"},
    `methods that apply: ${body.methods_that_apply.join(", ")} · ${body.latency_ms} ms`));
  out.dataset.state = "done";
}

async function explainInput(event) {
  const model = current();
  const out = $("explanation");
  out.hidden = false;
  out.dataset.state = "running";
  out.textContent = "explaining…";
  predict(event);  // the prediction beside its explanation
  const {request} = buildRequest(model);
  const method = $("method").value;
  const query = method ? `?method=${encodeURIComponent(method)}` : "";
  try {
    const response = await fetch(`/v1/models/${encodeURIComponent(model.name)}/explain${query}`, request);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    renderExplanation(body);
  } catch (error) {
    out.replaceChildren(el("p", {class: "error"}, String(error.message || error)));
    out.dataset.state = "error";
  }
}

async function start() {
  const response = await fetch("/v1/models");
  models = (await response.json()).models;
  for (const model of models) $("model").appendChild(el("option", {value: model.name}, model.name));
  $("model").addEventListener("change", showInputs);
  $("form").addEventListener("submit", (event) => { $("explanation").hidden = true; predict(event); });
  $("explain").addEventListener("click", explainInput);
  showInputs();
  document.body.dataset.ready = "true";
}

start();
