// The page: settings in, story out. The model runs in web/worker.js; this file only talks to it.
//
// document.body.dataset.state is loading | ready | generating | error, dataset.ended is
// end | length | stopped after a story, and the element ids (prompt, temperature, topp, seed,
// steps, generate, stop, output, status, seed-used, continue, share, copy, download,
// show-probabilities, open-model) are a public contract the end-to-end tests rely on.

import { listenForModelFiles } from "./own-model.js";
import { megabytes, modelPicker, parameters, siteModels } from "./models.js";
import { loadMeter } from "./progress.js";
import { decodeShare, shareURL, storyFile } from "./share.js";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("controls"),
  prompt: $("prompt"),
  temperature: $("temperature"),
  temperatureValue: $("temperature-value"),
  topp: $("topp"),
  toppValue: $("topp-value"),
  seed: $("seed"),
  randomSeed: $("random-seed"),
  steps: $("steps"),
  generate: $("generate"),
  stop: $("stop"),
  continue: $("continue"),
  retry: $("retry"),
  output: $("output"),
  status: $("status"),
  model: $("model"),
  progress: $("progress"),
  progressLabel: $("progress-label"),
  seedUsed: $("seed-used"),
  copy: $("copy"),
  download: $("download"),
  share: $("share"),
  showProbabilities: $("show-probabilities"),
  why: $("why"),
  shortcutHint: $("shortcut-hint"),
  offline: $("offline"),
  openModel: $("open-model"),
};
const SETTINGS_KEY = "llama2np-settings"; // what the visitor typed survives a reload of the tab
const RUNTIME_KEY = "llama2np-runtime"; // the runtime folder this browser downloaded whole before
const SETTINGS = ["prompt", "temperature", "topp", "seed", "steps"];

let worker = null;
let model = null;
let runId = 0;
let current = null; // the run being written: {id, continuation: Element, explain}
let story = null; // the story shown: {prompt, temperature, topp, seed, steps, explained, canContinue}
let meter = null;
const benchmarks = new Map(); // id -> {resolve, reject}
let models = []; // the site's models (web/models.js); the picker shows when there are several
let chosen = null; // the model the visitor chose, or null for the site's default
let picker = null; // the <select id="model-select">
let switching = null; // while another model loads in the same Python: the one before it

// --- state ---------------------------------------------------------------------------------

function setState(state) {
  document.body.dataset.state = state;
  const generating = state === "generating";
  ui.generate.disabled = state !== "ready";
  ui.stop.disabled = !generating;
  ui.retry.hidden = state !== "error";
  if (picker) picker.disabled = !(state === "ready" || state === "error");
  ui.continue.hidden = !(state === "ready" && story?.canContinue);
  ui.output.setAttribute("aria-busy", String(generating));
  const written = state === "ready" && Boolean(story?.finished);
  for (const button of [ui.copy, ui.download, ui.share]) button.disabled = !written;
  keepFocus(generating ? ui.stop : state === "error" ? ui.retry : ui.generate);
}

// A control that was just disabled or hidden drops the keyboard focus to <body>, where Enter
// does nothing; the focus moves to the control that does the next sensible thing instead.
function keepFocus(next) {
  const active = document.activeElement;
  if (!active || active === document.body || active.disabled || active.hidden || active.closest("[hidden]")) {
    next.focus({ preventScroll: true });
  }
}

function say(message, kind = "info") {
  ui.status.textContent = message;
  ui.status.dataset.kind = kind;
}

// --- the worker ----------------------------------------------------------------------------

function startWorker() {
  worker?.terminate();
  model = null;
  current = null;
  setState("loading");
  say("");
  meter = loadMeter((fraction, label) => {
    ui.progress.value = fraction;
    ui.progressLabel.textContent = label;
  });
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => handlers[data.type]?.(data);
  worker.onerror = (event) => {
    event.preventDefault();
    fail(`The model's worker stopped (${event.message || "it could not start"}). Press Retry.`);
  };
  worker.postMessage({
    type: "load",
    pyodideURL: siteURL("llama2np-pyodide"),
    modelURL: chosen?.manifestURL ?? siteURL("llama2np-model"),
    runtimeCached: remembered(RUNTIME_KEY) === siteURL("llama2np-pyodide"),
  });
}

// Where a <meta> tag of the page says a part of the site is, as an absolute address.
const siteURL = (name) => new URL(document.querySelector(`meta[name="${name}"]`).content, document.baseURI).href;

// Storage may be disabled or full; then nothing is remembered.
function remembered(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // the next visit counts the runtime's bytes again; nothing else changes
  }
}

const handlers = {
  progress(message) {
    meter?.update(message);
  },
  ready({ model: info, seconds, stages, fromSnapshot, resources }) {
    model = info;
    switching = null;
    meter?.finish();
    window.llama2np.model = info;
    window.llama2np.loadSeconds = seconds;
    window.llama2np.loadStages = stages;
    window.llama2np.fromSnapshot = fromSnapshot;
    window.llama2np.readyMs = performance.now();
    remember(RUNTIME_KEY, siteURL("llama2np-pyodide"));
    showModel(info);
    setState("ready");
    const next = fromShare
      ? "The settings of a shared story are filled in: press Generate to write it again."
      : "Type the start of a story, or just press Generate.";
    say(`Ready in ${seconds.toFixed(1)} s. ${next}`);
    keepOffline(resources);
  },
  start({ id, promptText, seed, steps }) {
    if (id !== current?.id) return;
    story = { ...current.request, seed, steps, explained: current.explain, canContinue: false, finished: false };
    ui.seedUsed.textContent = `· seed ${seed}`;
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = promptText;
    current.continuation = document.createElement("span");
    current.continuation.className = "continuation";
    ui.output.replaceChildren(prompt, current.continuation);
    ui.output.classList.toggle("explained", current.explain);
    delete ui.output.dataset.stale;
    showStory();
  },
  continued({ id, steps, takenBack }) {
    if (id !== current?.id) return;
    story.steps = steps;
    if (takenBack) takeBack(current.continuation, takenBack);
  },
  tokens({ id, text, pieces }) {
    if (id !== current?.id || !current.continuation) return;
    if (!pieces) return current.continuation.append(text);
    current.continuation.append(...pieces.map(tokenSpan));
    // a length end can flush a cut character (U+FFFD) that belongs to no token
    const tokensText = pieces.map((piece) => piece.text).join("");
    if (text.length > tokensText.length) current.continuation.append(text.slice(tokensText.length));
  },
  done({ id, stopped, ended, canContinue, stats }) {
    if (id !== current?.id) return;
    current = null;
    window.llama2np.lastStats = stats;
    story.canContinue = canContinue;
    story.finished = true;
    const how = stopped ? "stopped" : ended;
    document.body.dataset.ended = how;
    setState("ready");
    const endings = {
      end: "The model ended the story.",
      length: canContinue ? `Cut off at Length ${story.steps}; Continue writes on.` : "The context is full.",
      stopped: "Stopped; Continue writes on.",
    };
    const firstMs = (stats.first_token_seconds * 1000).toFixed(0);
    const speed = stats.tokens_per_second ? `${stats.tokens_per_second.toFixed(0)} tokens/s` : "";
    say([`${stats.generated_tokens} tokens`, speed, `first token in ${firstMs} ms`].filter(Boolean).join(" · ") + `. ${endings[how]}`);
  },
  error({ id, fatal, message }) {
    if (switching && !fatal) return switchFailed(message);
    switching = null;
    if (fatal) return fail(message);
    if (id !== undefined && id === current?.id) current = null;
    markStale();
    if (document.body.dataset.state !== "loading") setState("ready");
    say(message, "error");
  },
  opened({ model: info, seconds, heap }) {
    model = info;
    window.llama2np.model = info;
    window.llama2np.openedHeap = heap;
    showModel(info);
    story = null;
    ui.output.replaceChildren();
    ui.seedUsed.textContent = "";
    delete document.body.dataset.ended;
    setState("ready");
    say(`${info.name} is ready (read in ${seconds.toFixed(1)} s); it stays in this page and is sent nowhere.`);
  },
  "open-failed"({ message }) {
    setState("ready"); // the model before stays loaded
    say(message, "error");
  },
  "bench-result"({ id, results }) {
    benchmarks.get(id)?.resolve(results);
    benchmarks.delete(id);
  },
};

// The model card: name, parameters, size and context.
function showModel(info) {
  const c = info.config;
  ui.model.textContent = `${info.name}: ${parameters(info.parameters)} parameters, ${megabytes(info.bytes)} MB, context of ${c.seq_len} tokens.`;
  ui.steps.max = c.seq_len;
}

// The visitor's own checkpoint and tokenizer, read by the worker (web/own-model.js).
function openModel(files) {
  if (document.body.dataset.state !== "ready") {
    say(document.body.dataset.state === "generating" ? "Stop the story before opening a model." : "Open the model files once the page is ready.", "error");
    return;
  }
  setState("loading");
  say(`Reading ${files.map((file) => file.name).join(" and ")}…`);
  worker.postMessage({ type: "open", files });
}

// --- the site's models ---------------------------------------------------------------------

// Reads the site's list of models and, with several, shows the picker. A share link's model
// (`model=` in its fragment) is chosen when the site has it.
async function findModels(sharedName) {
  if (!document.querySelector('meta[name="llama2np-models"]')) return; // a page of one model
  models = await siteModels(siteURL("llama2np-models"), document.baseURI);
  chosen = models.find((m) => m.name === sharedName) ?? null;
  if (models.length < 2) return;
  picker = modelPicker(ui.model, models, chosen ?? models[0], chooseModel);
  setState(document.body.dataset.state);
}

// Another model, read by the same Python (the worker frees the one before); after a failure
// the picker chooses it again through a fresh worker.
function chooseModel(next) {
  chosen = next;
  if (document.body.dataset.state !== "ready") return startWorker();
  switching = model;
  model = null;
  markStale();
  setState("loading");
  say("");
  meter = loadMeter((fraction, label) => {
    ui.progress.value = fraction;
    ui.progressLabel.textContent = label;
  });
  worker.postMessage({ type: "model", modelURL: next.manifestURL });
}

// The other model could not be fetched: the one before is still loaded and stays chosen.
function switchFailed(message) {
  model = switching;
  switching = null;
  chosen = models.find((m) => m.manifestURL === model?.manifest) ?? chosen;
  if (picker && chosen) picker.value = String(models.indexOf(chosen));
  meter?.finish();
  setState("ready");
  say(message, "error");
}

function fail(message) {
  current = null;
  markStale();
  setState("error");
  say(message, "error");
  for (const { reject } of benchmarks.values()) reject(new Error(message));
  benchmarks.clear();
}

// An error leaves the last story on the page, marked as the one before it, not as its result.
function markStale() {
  if (ui.output.textContent) ui.output.dataset.stale = "true";
  delete document.body.dataset.ended;
  if (story) story.canContinue = false;
}

// Removes the last `count` characters (code points) from the text of `element`.
function takeBack(element, count) {
  while (count > 0 && element.lastChild) {
    const node = element.lastChild;
    const chars = Array.from(node.textContent);
    const keep = Math.max(0, chars.length - count);
    count -= chars.length - keep;
    if (keep === 0) node.remove();
    else node.textContent = chars.slice(0, keep).join("");
  }
}

// --- the controls --------------------------------------------------------------------------

function settings() {
  const steps = Number(ui.steps.value);
  const seed = Number(ui.seed.value);
  const maxSteps = model?.config.seq_len ?? 512;
  if (ui.steps.value.trim() === "" || !Number.isInteger(steps) || steps < 0 || steps > maxSteps) {
    throw new Error(`Length must be a whole number from 0 (the whole context) to ${maxSteps}.`);
  }
  if (ui.seed.value.trim() === "" || !Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw new Error(`Seed must be a whole number from 0 (from the clock) to ${Number.MAX_SAFE_INTEGER}.`);
  }
  return {
    prompt: ui.prompt.value,
    temperature: Number(ui.temperature.value),
    topp: Number(ui.topp.value),
    seed,
    steps,
  };
}

function generate() {
  if (document.body.dataset.state !== "ready") return; // a second click while writing does nothing
  let request;
  try {
    request = settings();
  } catch (error) {
    markStale();
    setState("ready");
    say(error.message, "error");
    return;
  }
  const explain = ui.showProbabilities.checked;
  if (picker && model) request.model = models.find((m) => m.manifestURL === model.manifest)?.name;
  current = { id: ++runId, continuation: null, explain, request };
  begin("Writing…");
  worker.postMessage({ type: "generate", id: current.id, explain, ...request });
}

function continueStory() {
  if (document.body.dataset.state !== "ready" || !story?.canContinue) return;
  current = { id: ++runId, continuation: ui.output.querySelector(".continuation"), explain: story.explained };
  story.canContinue = false;
  begin("Writing on…");
  worker.postMessage({ type: "continue", id: current.id });
}

function begin(message) {
  delete document.body.dataset.ended;
  hideWhy();
  setState("generating");
  say(message);
  showStory();
}

// On a small screen the settings fill the first view: the story is brought up to be seen.
function showStory() {
  if (!matchMedia("(max-width: 40rem)").matches) return;
  const top = ui.output.getBoundingClientRect().top;
  if (top > window.innerHeight * 0.5 || top < 0) {
    ui.output.scrollIntoView({ block: "start", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  }
}

function stop() {
  if (current) worker.postMessage({ type: "stop", id: current.id });
}

function showValues() {
  const t = Number(ui.temperature.value);
  ui.temperatureValue.textContent = t === 0 ? "0 (greedy)" : t.toFixed(2);
  const p = Number(ui.topp.value);
  ui.toppValue.textContent = p <= 0 || p >= 1 ? "off" : p.toFixed(2);
}

function saveSettings() {
  const values = Object.fromEntries(SETTINGS.map((name) => [name, ui[name].value]));
  try {
    sessionStorage.setItem(SETTINGS_KEY, JSON.stringify(values));
  } catch {
    // storage may be disabled; the settings then last as long as the page
  }
}

function restoreSettings() {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(SETTINGS_KEY) ?? "{}") ?? {};
  } catch {
    // nothing saved, or storage disabled
  }
  // A shared link's settings come first: that is what the visitor came to see.
  const shared = decodeShare(location.hash);
  for (const name of SETTINGS) {
    const value = shared?.[name] ?? saved[name];
    if (typeof value === "string") ui[name].value = value;
  }
  sharedModel = shared?.model ?? null;
  return Boolean(shared);
}

// --- what to do with a story ---------------------------------------------------------------

// The story as text: the prompt as the model read it, then what it wrote.
const storyText = () => ui.output.textContent;

async function toClipboard(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    say(`${what} copied.`);
    return true;
  } catch {
    say(`The browser did not allow copying; select the ${what.toLowerCase()} and copy it by hand.`, "error");
    return false;
  }
}

async function share() {
  const url = shareURL(location.href, story);
  history.replaceState(null, "", url);
  ui.share.dataset.url = url;
  if (await toClipboard(url, "Link")) say("Link copied, and in the address bar: it opens this page with this story's prompt and settings.");
}

function download() {
  const { name, text } = storyFile(story, storyText(), model?.name ?? "model", shareURL(location.href, story));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  say(`Saved as ${name}.`);
}

// --- why this word -------------------------------------------------------------------------

const percent = (p) => (p >= 0.995 ? "100%" : p >= 0.001 ? `${(p * 100).toFixed(1)}%` : "<0.1%");
const shownPiece = (text) => JSON.stringify(text);

function tokenSpan({ text, p, top }) {
  const span = document.createElement("span");
  span.className = "token";
  span.textContent = text;
  span.dataset.p = String(p);
  span.dataset.band = String(Math.min(4, Math.floor(p * 5)));
  span.dataset.top = JSON.stringify(top.map((t) => [t.text, t.p]));
  span.tabIndex = 0;
  return span;
}

function showWhy(span) {
  if (!span?.dataset.p || !ui.output.classList.contains("explained") || !ui.showProbabilities.checked) return;
  const top = JSON.parse(span.dataset.top);
  const alternatives = top.map(([text, p]) => `${shownPiece(text)} ${percent(p)}`).join(", ");
  ui.why.textContent = `${shownPiece(span.textContent)}: ${percent(Number(span.dataset.p))}. Likeliest at this point: ${alternatives}.`;
  ui.why.hidden = false;
  for (const old of ui.output.querySelectorAll(".token.chosen")) old.classList.remove("chosen");
  span.classList.add("chosen");
}

function hideWhy() {
  ui.why.hidden = true;
}

function toggleProbabilities() {
  document.body.classList.toggle("probabilities", ui.showProbabilities.checked);
  if (!ui.showProbabilities.checked) return hideWhy();
  if (story && !story.explained && document.body.dataset.state === "ready") {
    say("Generate again to see how likely each word was; the story stays the same.");
  }
}

// --- offline -------------------------------------------------------------------------------

// The service worker (at the site's root) keeps what this visit loaded, so that the next visit
// works without a network. The worker's own requests are listed by the worker (`resources`).
async function keepOffline(resources = []) {
  if (!("serviceWorker" in navigator)) return;
  try {
    const registration = await navigator.serviceWorker.register(new URL("service-worker.js", document.baseURI), { scope: "./" });
    const active = registration.active ?? (await navigator.serviceWorker.ready).active;
    const page = performance.getEntriesByType("resource").map((entry) => entry.name);
    const urls = [new URL(".", document.baseURI).href, ...page, ...resources].filter((url) => url.startsWith(location.origin));
    const kept = new MessageChannel();
    kept.port1.onmessage = ({ data }) => {
      if (data?.kept) {
        ui.offline.hidden = false;
        document.body.dataset.offline = "ready";
      }
    };
    // The site's other models are not fetched for keeping, but those kept before stay.
    const folders = models.map((m) => m.manifestURL);
    active.postMessage({ type: "keep", urls: [...new Set(urls)], folders }, [kept.port2]);
  } catch (error) {
    console.warn(`This page will not work offline: ${error?.message ?? error}`);
  }
}


// --- for the benchmark and tests (no eval needed under the page's policy) -------------------

window.llama2np = {
  model: null,
  loadSeconds: null,
  loadStages: null,
  fromSnapshot: null,
  readyMs: null,
  bench(options = {}) {
    if (document.body.dataset.state !== "ready") return Promise.reject(new Error("The page is not ready."));
    const id = ++runId;
    return new Promise((resolve, reject) => {
      benchmarks.set(id, { resolve, reject });
      worker.postMessage({ type: "bench", id, ...options });
    });
  },
};

// --- wiring --------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  generate();
});
ui.stop.addEventListener("click", stop);
ui.continue.addEventListener("click", continueStory);
ui.retry.addEventListener("click", startWorker);
ui.copy.addEventListener("click", () => toClipboard(storyText(), "Story"));
ui.download.addEventListener("click", download);
ui.share.addEventListener("click", share);
ui.showProbabilities.addEventListener("change", toggleProbabilities);
listenForModelFiles(ui.openModel, openModel);
ui.randomSeed.addEventListener("click", () => {
  ui.seed.value = String(1 + Math.floor(Math.random() * 2 ** 31));
  saveSettings();
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    generate();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && current) {
    event.preventDefault();
    stop();
  }
});
for (const type of ["mouseover", "focusin", "click"]) {
  ui.output.addEventListener(type, (event) => showWhy(event.target.closest?.(".token")));
}
ui.form.addEventListener("input", () => {
  showValues();
  saveSettings();
});

// The shortcut as this platform writes it, and none on a touch screen, which has no such keys.
const touch = matchMedia("(pointer: coarse)").matches || navigator.maxTouchPoints > 0;
const mac = /Mac|iPhone|iPad/.test(navigator.userAgentData?.platform ?? navigator.platform ?? "");
ui.shortcutHint.textContent = touch ? "" : mac ? "; ⌘+Return writes, Esc stops" : "; Ctrl+Enter writes, Esc stops";

let sharedModel = null; // the model a share link names (restoreSettings)
const fromShare = restoreSettings();
showValues();
document.body.classList.toggle("probabilities", ui.showProbabilities.checked); // kept over a reload
// A share link naming a model waits for the list to load that model first; otherwise the
// default loads at once and the picker appears meanwhile.
if (sharedModel) findModels(sharedModel).finally(startWorker);
else {
  startWorker();
  findModels(null);
}
