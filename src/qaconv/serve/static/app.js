// The page of `qaconv serve`: choose a query (upload, or browse the gallery with filters), search the gallery,
// show the correspondences of a hit, the rank of the first true match and AP, export the results, add images.
// It uses only the server's JSON API (docs/serve.md) and loads nothing from anywhere else.
"use strict";

const $ = (id) => document.getElementById(id);
const PICKER_PAGE = 24;
const state = { health: null, blob: null, name: "", queryId: null, pickerOffset: 0, controller: null };

function imageUrl(path) {
  return "/api/image?path=" + encodeURIComponent(path);
}

function baseName(path) {
  return path.split(/[\\/]/).pop();
}

function identityText(item) {
  const parts = [];
  if (item.pid !== null && item.pid !== undefined) parts.push("id " + item.pid);
  if (item.camid !== null && item.camid !== undefined) parts.push("cam " + item.camid);
  return parts.join(" · ");
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// The JSON of a response, or an Error carrying the server's {"error": ...} message.
async function readJson(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered ${response.status} ${response.statusText}`);
  }
  return body;
}

async function loadHealth() {
  try {
    const health = await readJson(await fetch("/api/health"));
    state.health = health;
    const model = health.model.checkpoint ? baseName(health.model.checkpoint.replace(/[\\/]checkpoint\.pt$/, "")) : "model";
    $("summary").textContent =
      `${health.index.images.toLocaleString()} gallery images · ${model} · ${health.model.device}`;
    $("summary").title = `index ${health.index.path}\ncheckpoint ${health.model.checkpoint}`;
    $("topk").max = health.max_topk;
    $("first-stage-option").hidden = !health.index.first_stage;
    $("shortlist-option").hidden = !health.index.shortlist || health.index.first_stage;
    $("shortlist").value = Math.min(100, health.index.images);
    fillFilters(health.facets);
    $("add").hidden = !health.additions;
    if (!health.fingerprint_match) {
      showError("This index was built with another checkpoint: searches will be refused. Serve it with its own checkpoint.");
    }
  } catch (err) {
    $("summary").textContent = "the server does not answer";
    showError(err.message);
  }
}

// The hits and their note go as soon as they no longer belong to the query on show.
function clearHits(note) {
  state.queryId = null;
  $("hits").replaceChildren();
  $("actions").hidden = true;
  $("evaluation").textContent = "";
  $("result-info").textContent = note;
  $("result-info").classList.remove("error");
}

// An error shown where the user looks: in the results, and beside the controls.
function showSearchError(message) {
  clearHits(message);
  $("result-info").classList.add("error");
  showError(message);
}

function setQuery(blob, name) {
  state.blob = blob;
  state.name = name;
  clearHits("");
  const img = $("query-img");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
  img.hidden = false;
  $("drop").classList.add("has-image");
  $("query-name").textContent = name;
  $("search").disabled = false;
  search();
}

function progress(text) {
  $("progress").hidden = !text;
  $("progress-text").textContent = text || "";
}

// A new search cancels the one in flight: only the latest query's hits are ever shown.
async function search() {
  if (!state.blob) return;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  showError("");
  clearHits("");
  const limit = state.health ? state.health.max_upload_bytes : Infinity;
  if (state.blob.size > limit) {
    showSearchError(`${state.name} is larger than the server's upload limit of ${(limit / 2 ** 20).toFixed(1)} MiB`);
    return;
  }
  const form = new FormData();
  form.append("image", state.blob, state.name);
  form.append("topk", $("topk").value);
  if ($("use-shortlist").checked && !$("shortlist-option").hidden) form.append("shortlist", $("shortlist").value);
  if ($("exhaustive").checked && !$("first-stage-option").hidden) form.append("first_stage", "none");
  const images = state.health ? state.health.index.images.toLocaleString() + " " : "";
  const start = performance.now();
  const tick = () => progress(`searching ${images}gallery images… ${((performance.now() - start) / 1000).toFixed(1)} s`);
  tick();
  const timer = setInterval(tick, 100);
  try {
    const response = await fetch("/api/search", { method: "POST", body: form, signal: controller.signal });
    const result = await readJson(response);
    if (state.controller === controller) showHits(result, (performance.now() - start) / 1000);
  } catch (err) {
    if (err.name !== "AbortError" && state.controller === controller) showSearchError(err.message);
  } finally {
    clearInterval(timer);
    if (state.controller === controller) {
      progress("");
      state.controller = null;
    }
  }
}

// A hit of the query's identity: "same-id" from another camera (a true match under the evaluation protocol),
// "same-camera" from the query's own camera (which the protocol ignores: the same person in the same shot).
function matchKind(result, hit) {
  if (result.pid === null || result.pid === undefined || hit.pid !== result.pid) return "";
  return hit.camid !== null && hit.camid === result.camid ? "same-camera" : "same-id";
}

function showHits(result, seconds) {
  state.queryId = result.query;
  const who = identityText(result);
  $("query-name").textContent = who ? `${state.name} · ${who}` : state.name;
  const list = $("hits");
  list.replaceChildren();
  result.hits.forEach((hit, i) => {
    const item = document.createElement("li");
    item.className = "hit";
    const kind = matchKind(result, hit);
    if (kind) item.classList.add(kind);
    const button = document.createElement("button");
    button.type = "button";
    button.title = hit.path + (kind === "same-camera" ? "\nthe query's identity from the query's own camera" : "");
    const img = document.createElement("img");
    img.src = imageUrl(hit.path);
    img.alt = baseName(hit.path);
    img.loading = "lazy";
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = "#" + (i + 1);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(2);
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = identityText(hit) || baseName(hit.path);
    button.append(img, rank, score, meta);
    button.addEventListener("click", () => openMatch(hit, i + 1));
    item.append(button);
    list.append(item);
  });
  $("result-info").textContent =
    `${result.hits.length} best of ${state.health ? state.health.index.images.toLocaleString() : "?"} · ` +
    `${result.search} · ${seconds.toFixed(2)} s · click a hit to see why it matches`;
  $("legend").hidden = false;
  $("legend-identity").hidden = result.pid === null || result.pid === undefined;
  showActions(result);
}

// Exports of this search, and the rank / AP button when the query and the gallery carry identities.
function showActions(result) {
  for (const format of ["csv", "json", "html"]) {
    $("export-" + format).href = `/api/export?query=${encodeURIComponent(result.query)}&format=${format}`;
  }
  const labelled = state.health && state.health.facets.labelled && result.pid !== null && result.pid !== undefined;
  $("evaluate").hidden = !labelled;
  $("evaluation").textContent = "";
  $("actions").hidden = false;
}

async function evaluate() {
  const query = state.queryId;
  $("evaluation").textContent = "scoring every gallery image…";
  try {
    const answer = await readJson(await fetch(`/api/evaluate?query=${encodeURIComponent(query)}`));
    if (state.queryId !== query) return;
    const first = answer.first_true_match_rank === null ? "no true match in the gallery"
      : `first true match at rank ${answer.first_true_match_rank}`;
    $("evaluation").textContent =
      `${first} · AP ${(100 * answer.average_precision).toFixed(1)}% (${answer.true_matches} true matches)`;
  } catch (err) {
    if (state.queryId === query) $("evaluation").textContent = err.message;
  }
}

function fillFilters(facets) {
  const fill = (select, values, label) => {
    select.replaceChildren(new Option("all", ""));
    for (const { value, images } of values) select.append(new Option(`${label(value)} (${images})`, value));
  };
  fill($("filter-camera"), facets.cameras, (c) => "cam " + c);
  fill($("filter-folder"), facets.folders, (f) => f);
}

function filterQuery() {
  const params = new URLSearchParams();
  for (const [name, id] of [["camera", "filter-camera"], ["pid", "filter-pid"], ["folder", "filter-folder"]]) {
    if ($(id).value !== "") params.set(name, $(id).value);
  }
  const text = params.toString();
  return text ? "&" + text : "";
}

// New gallery images go in batches under the upload limit; the server indexes each batch.
async function addImages() {
  const files = Array.from($("add-files").files);
  const limit = state.health ? state.health.max_upload_bytes : Infinity;
  const batches = [];
  let batch = [];
  let size = 0;
  for (const file of files) {
    if (file.size > limit) {
      $("add-status").textContent = `${file.name} is larger than the upload limit`;
      return;
    }
    if (batch.length && size + file.size > limit) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(file);
    size += file.size;
  }
  if (batch.length) batches.push(batch);
  $("add-button").disabled = true;
  let added = 0;
  try {
    for (const part of batches) {
      $("add-status").textContent = `adding and indexing ${added + part.length} of ${files.length}…`;
      const form = new FormData();
      for (const file of part) form.append("images", file, file.name);
      const answer = await readJson(await fetch("/api/gallery", { method: "POST", body: form }));
      added += answer.added.length;
      $("add-status").textContent = `added ${added} image(s); the gallery holds ${answer.images.toLocaleString()}`;
    }
    await loadHealth();
    if ($("picker").open) loadPicker(0);
  } catch (err) {
    $("add-status").textContent = err.message;
  } finally {
    $("add-button").disabled = false;
  }
}

async function openMatch(hit, rank) {
  const dialog = $("match");
  const img = $("match-img");
  $("match-title").textContent = [`#${rank}`, `score ${hit.score.toFixed(3)}`, identityText(hit), baseName(hit.path)]
    .filter(Boolean)
    .join(" · ");
  $("match-error").hidden = true;
  $("match-progress").hidden = false;
  img.hidden = true;
  if (!dialog.open) dialog.showModal();
  const url = `/api/match?query=${encodeURIComponent(state.queryId)}&gallery=${encodeURIComponent(hit.path)}`;
  try {
    const response = await fetch(url);
    if (!response.ok) await readJson(response);
    const blob = await response.blob();
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    await img.decode();
    img.hidden = false;
  } catch (err) {
    $("match-error").textContent = err.message;
    $("match-error").hidden = false;
  } finally {
    $("match-progress").hidden = true;
  }
}

async function loadPicker(offset) {
  try {
    const page = await readJson(await fetch(`/api/gallery?offset=${offset}&limit=${PICKER_PAGE}${filterQuery()}`));
    state.pickerOffset = page.offset;
    const grid = $("picker-grid");
    grid.replaceChildren();
    for (const item of page.items) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "pick";
      button.title = `${baseName(item.path)} ${identityText(item)}`;
      const img = document.createElement("img");
      img.src = imageUrl(item.path);
      img.alt = baseName(item.path);
      img.loading = "lazy";
      button.append(img);
      button.addEventListener("click", () => pickGallery(item));
      grid.append(button);
    }
    const last = Math.min(page.offset + PICKER_PAGE, page.total);
    $("picker-page").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total.toLocaleString()}`
      : "no image passes the filters";
    $("picker-prev").disabled = page.offset === 0;
    $("picker-next").disabled = last >= page.total;
  } catch (err) {
    showError(err.message);
  }
}

async function pickGallery(item) {
  try {
    const response = await fetch(imageUrl(item.path));
    if (!response.ok) await readJson(response);
    setQuery(await response.blob(), baseName(item.path));
  } catch (err) {
    showSearchError(err.message);
  }
}

function setUp() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) setQuery(file, file.name);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    const file = event.dataTransfer.files[0];
    if (file) setQuery(file, file.name);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file").click();
  });
  $("search").addEventListener("click", search);
  $("topk").addEventListener("keydown", (event) => event.key === "Enter" && search());
  $("picker").addEventListener("toggle", () => $("picker").open && loadPicker(state.pickerOffset));
  $("picker-prev").addEventListener("click", () => loadPicker(Math.max(0, state.pickerOffset - PICKER_PAGE)));
  $("picker-next").addEventListener("click", () => loadPicker(state.pickerOffset + PICKER_PAGE));
  for (const id of ["filter-camera", "filter-pid", "filter-folder"]) $(id).addEventListener("change", () => loadPicker(0));
  $("evaluate").addEventListener("click", evaluate);
  $("add-files").addEventListener("change", () => ($("add-button").disabled = !$("add-files").files.length));
  $("add-button").addEventListener("click", addImages);
  loadHealth();
}

setUp();
