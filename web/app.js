// The page: settings in, story out. The model runs in web/worker.js; this file only talks to it.
//
// document.body.dataset.state is loading | ready | generating | error, dataset.ended is
// end | length | stopped after a story, and the element ids (prompt, temperature, topp, seed,
// steps, generate, stop, output, status, seed-used, continue, share, copy, download,
// show-probabilities, open-model) are a public contract the end-to-end tests rely on.

import { megabytes, modelPicker, parameters, siteModels } from "./models.js";
import { keepOffline } from "./offline.js";
import { listenForModelFiles } from "./own-model.js";
import { loadMeter } from "./progress.js";
import { IN, OUT } from "./protocol.js";
import { readSettings, remember, remembered, restoreSettings, saveSettings } from "./settings.js";
import { shareURL, storyFile } from "./share.js";
import { explainer, tokenSpan } from "./why.js";

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
  footerModel: $("footer-model"),
  sourceCode: $("source-code"),
  actions: document.querySelector(".actions-bar"),
};
const RUNTIME_KEY = "llama2np-runtime"; // the runtime folder this browser downloaded whole before

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
let interacted = false; // whether the visitor has used a key or a pointer on this page yet
let following = false; // whether the page scrolls along as the story grows (see follow)
let shared = null; // the settings of the share link the page was opened with, if any
const why = explainer(ui.output, ui.why, () => ui.showProbabilities.checked && ui.output.classList.contains("explained"));

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
  for (const button of [ui.copy, ui.download]) button.disabled = !written;
  ui.share.disabled = !written || story.own; // a link cannot carry the visitor's own files
  keepFocus(generating ? ui.stop : state === "error" ? ui.retry : ui.generate);
}

// A control that was just disabled or hidden drops the keyboard focus to <body>, where Enter
// does nothing; the focus moves to the control that does the next sensible thing instead. A
// page that nobody has touched yet keeps its focus where the browser put it.
function keepFocus(next) {
  const active = document.activeElement;
  const lost = !active || active === document.body;
  if (lost ? interacted : active.disabled || active.hidden || active.closest("[hidden]")) {
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
  ui.model.textContent = "Loading the model…";
  setState("loading");
  say("");
  startMeter(remembered(RUNTIME_KEY) === siteURL("llama2np-pyodide"));
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => handlers[data.type]?.(data);
  worker.onerror = (event) => {
    event.preventDefault();
    workerFailure(event).then(fail);
  };
  worker.postMessage({
    type: IN.LOAD,
    pyodideURL: siteURL("llama2np-pyodide"),
    modelURL: chosen?.manifestURL ?? siteURL("llama2np-model"),
  });
}

// Why the worker could not run, in a sentence: a module script is run only when the host sends
// it as JavaScript, which is a setting of the host's.
async function workerFailure(event) {
  const generic = `The model's worker stopped (${event.message || "it could not start"}). Press Retry.`;
  try {
    const response = await fetch(new URL("./worker.js", import.meta.url), { method: "HEAD" });
    const type = response.headers.get("Content-Type") ?? "no type";
    if (response.ok && !/javascript|ecmascript/i.test(type)) {
      return `The host sends the page's scripts (.js files) as "${type}", which browsers do not run; set the type of .js files to text/javascript on the host.`;
    }
  } catch {
    // unreachable: the generic sentence says what can be said
  }
  return generic;
}

// The load bar, from the first progress message to `ready` (web/progress.js); `cached`: this
// browser loaded these files before (another of the site's models may not be).
function startMeter(cached = false, next = undefined) {
  meter = loadMeter((fraction, label) => {
    ui.progress.value = fraction;
    ui.progressLabel.textContent = label;
  }, cached, next);
}

// Where a <meta> tag of the page says a part of the site is, as an absolute address.
const siteURL = (name) => new URL(document.querySelector(`meta[name="${name}"]`).content, document.baseURI).href;

const handlers = {
  [OUT.PROGRESS](message) {
    meter?.update(message);
  },
  [OUT.READY]({ model: info, seconds, stages, fromSnapshot, resources }) {
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
    const next = shared
      ? "The settings of a shared story are filled in: press Generate to write it again."
      : "Type the start of a story, or just press Generate.";
    say(`Ready in ${seconds.toFixed(1)} s. ${next}`);
    keepOffline({
      resources,
      extra: [ui.sourceCode.href],
      folders: models.map((m) => m.manifestURL), // the site's other models: kept if they were
      onKept() {
        ui.offline.hidden = false;
        document.body.dataset.offline = "ready";
      },
    });
  },
  [OUT.START]({ id, promptText, seed, steps }) {
    if (id !== current?.id) return;
    story = { ...current.request, seed, steps, explained: current.explain, canContinue: false, finished: false, own: Boolean(model?.own) };
    ui.seedUsed.textContent = `· seed ${seed}`;
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = promptText;
    current.continuation = document.createElement("span");
    current.continuation.className = "continuation";
    ui.output.replaceChildren(prompt, current.continuation);
    ui.output.classList.toggle("explained", current.explain);
    delete ui.output.dataset.stale;
    why.reset();
    showStory();
  },
  [OUT.CONTINUED]({ id, steps, takenBack }) {
    if (id !== current?.id) return;
    story.steps = steps;
    if (takenBack) takeBack(current.continuation, takenBack);
  },
  [OUT.TOKENS]({ id, text, pieces }) {
    if (id !== current?.id || !current.continuation) return;
    if (!pieces) {
      current.continuation.append(text);
    } else {
      const spans = pieces.map(tokenSpan);
      current.continuation.append(...spans);
      if (spans.length && !ui.output.querySelector('.token[tabindex="0"]')) spans[0].tabIndex = 0;
      // a length end can flush a cut character (U+FFFD) that belongs to no token
      const tokensText = pieces.map((piece) => piece.text).join("");
      if (text.length > tokensText.length) current.continuation.append(text.slice(tokensText.length));
    }
    follow();
  },
  [OUT.DONE]({ id, stopped, ended, canContinue, stats }) {
    if (id !== current?.id) return;
    current = null;
    window.llama2np.lastStats = stats;
    story.canContinue = canContinue;
    story.finished = true;
    // A stopped story is shared and saved as the Length it reached, which writes it again.
    story.written = stats.prompt_tokens + stats.generated_tokens;
    const how = stopped ? "stopped" : ended;
    document.body.dataset.ended = how;
    setState("ready");
    const start = stats.prompt_tokens ? ` (${stats.prompt_tokens} of them the start's)` : "";
    const endings = {
      end: "The model ended the story.",
      length: canContinue ? `Cut off at Length ${story.steps}${start}; Continue writes on.` : "The context is full.",
      stopped: "Stopped; Continue writes on.",
    };
    const speed = stats.tokens_per_second ? ` at ${Math.round(stats.tokens_per_second).toLocaleString("en")} tokens/s` : "";
    const first = `${(stats.first_token_seconds * 1000).toFixed(0)} ms`;
    const count = `${stats.generated_tokens} token${stats.generated_tokens === 1 ? "" : "s"}`;
    say(`Wrote ${count}${speed}, the first after ${first}. ${endings[how]}`);
    follow(); // the status may have grown the pinned bar over the story's last line
    following = false;
  },
  [OUT.ERROR]({ id, fatal, message }) {
    if (switching && !fatal) return switchFailed(message);
    switching = null;
    if (fatal) return fail(message);
    if (id !== undefined && id === current?.id) current = null;
    markStale();
    if (document.body.dataset.state !== "loading") setState("ready");
    say(message, "error");
  },
  [OUT.OPENED]({ model: info, seconds, heap }) {
    model = { ...info, own: true };
    window.llama2np.model = info;
    window.llama2np.openedHeap = heap;
    showModel(info);
    story = null;
    ui.output.replaceChildren();
    ui.seedUsed.textContent = "";
    delete document.body.dataset.ended;
    setState("ready");
    say(`${info.name} is ready (read in ${seconds.toFixed(1)} s); it stays in this page and is sent nowhere, so Share is off for its stories.`);
  },
  [OUT.OPEN_FAILED]({ message }) {
    setState("ready"); // the model before stays loaded
    say(message, "error");
  },
  [OUT.BENCH_RESULT]({ id, results }) {
    benchmarks.get(id)?.resolve(results);
    benchmarks.delete(id);
  },
};

// The model card (name, parameters, size and context) and the footer's credit.
function showModel(info) {
  const c = info.config;
  ui.model.textContent = `${info.name}: ${parameters(info.parameters)} parameters, ${megabytes(info.bytes)} MB, context of ${c.seq_len} tokens.`;
  ui.footerModel.textContent = info.name;
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
  worker.postMessage({ type: IN.OPEN, files });
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
  startMeter(false, "Reading the model");
  worker.postMessage({ type: IN.MODEL, modelURL: next.manifestURL });
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
  if (!model) ui.model.textContent = "The model could not be loaded.";
  markStale();
  setState("error");
  say(message, "error");
  for (const { reject } of benchmarks.values()) reject(new Error(message));
  benchmarks.clear();
}

// An error leaves the last story on the page, marked as the one before it, not as its result.
function markStale() {
  following = false;
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

function generate() {
  if (document.body.dataset.state !== "ready") return; // a second click while writing does nothing
  let request;
  try {
    request = readSettings(model?.config.seq_len ?? 512);
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
  worker.postMessage({ type: IN.GENERATE, id: current.id, explain, ...request });
}

function continueStory() {
  if (document.body.dataset.state !== "ready" || !story?.canContinue) return;
  current = { id: ++runId, continuation: ui.output.querySelector(".continuation"), explain: story.explained };
  story.canContinue = false;
  begin("Writing on…");
  worker.postMessage({ type: IN.CONTINUE, id: current.id });
}

function begin(message) {
  delete document.body.dataset.ended;
  why.hide();
  setState("generating");
  say(message);
  following = true;
  showStory();
}

// The bottom of what the visitor can see of the page: the top of the bar pinned to a phone's
// screen, or the screen's bottom.
function visibleBottom() {
  return getComputedStyle(ui.actions).position === "fixed" ? ui.actions.getBoundingClientRect().top : innerHeight;
}

const motion = () => (matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth");

// On a small screen the settings fill the first view: the story is brought up to be seen.
function showStory() {
  if (!matchMedia("(max-width: 40rem)").matches) return;
  const top = ui.output.getBoundingClientRect().top;
  if (top > innerHeight * 0.5 || top < 0) ui.output.scrollIntoView({ block: "start", behavior: motion() });
}

// While a story is written, the line being written stays in view: the page scrolls as the story
// grows past the bottom of what can be seen, until the visitor scrolls it themselves.
function follow() {
  if (!following) return;
  const end = ui.output.getBoundingClientRect().bottom;
  const room = visibleBottom() - 8;
  if (end > room) window.scrollBy({ top: end - room, behavior: "instant" });
}

function stop() {
  if (current) worker.postMessage({ type: IN.STOP, id: current.id });
}

// The sliders' values as shown beside them and as a screen reader says them.
function showValues() {
  const t = Number(ui.temperature.value);
  ui.temperatureValue.textContent = t === 0 ? "0 (greedy)" : t.toFixed(2);
  ui.temperature.setAttribute("aria-valuetext", t === 0 ? "0, greedy" : t.toFixed(2));
  const p = Number(ui.topp.value);
  const off = p <= 0 || p >= 1;
  ui.toppValue.textContent = off ? "off" : p.toFixed(2);
  ui.topp.setAttribute("aria-valuetext", off ? `${p}, off` : p.toFixed(2));
}

// Settings changed by hand after Share: the address no longer names this story, so that a
// reload keeps what the visitor typed.
function forgetSharedLink() {
  if (!location.hash) return;
  history.replaceState(null, "", location.pathname + location.search);
  delete ui.share.dataset.url;
}

// A share link opened in this tab (only the part after # changed): its settings are filled in.
function openSharedLink() {
  const link = restoreSettings(location.hash);
  if (!link) return;
  shared = link;
  showValues();
  saveSettings();
  const other = link.model && models.find((m) => m.name === link.model);
  if (other && other.manifestURL !== model?.manifest && picker) {
    picker.value = String(models.indexOf(other));
    chooseModel(other);
  } else if (document.body.dataset.state === "ready") {
    say("The settings of a shared story are filled in: press Generate to write it again.");
  }
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

// The story's settings as a link writes it again: a stopped story's Length is what it reached.
const storySettings = () => ({ ...story, steps: document.body.dataset.ended === "stopped" ? story.written : story.steps });

async function share() {
  const url = shareURL(location.href, storySettings());
  history.replaceState(null, "", url);
  ui.share.dataset.url = url;
  if (await toClipboard(url, "Link")) say("Link copied, and in the address bar: it opens this page with this story's start and settings.");
}

function download() {
  const settings = storySettings();
  const url = story.own ? null : shareURL(location.href, settings);
  const { name, text } = storyFile(settings, storyText(), model?.name ?? "model", url);
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

function toggleProbabilities() {
  document.body.classList.toggle("probabilities", ui.showProbabilities.checked);
  if (!ui.showProbabilities.checked) return why.hide();
  if (story && !story.explained && document.body.dataset.state === "ready") {
    say("Generate again to see how likely each word was; the story stays the same.");
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
      worker.postMessage({ type: IN.BENCH, id, ...options });
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
ui.form.addEventListener("input", () => {
  showValues();
  saveSettings();
  forgetSharedLink();
});
ui.randomSeed.addEventListener("click", forgetSharedLink);
window.addEventListener("hashchange", openSharedLink);
for (const type of ["keydown", "pointerdown"]) {
  document.addEventListener(type, () => { interacted = true; }, { capture: true, once: true });
}
// The visitor scrolling while a story is written: the page stops following it.
for (const type of ["wheel", "touchmove"]) {
  window.addEventListener(type, () => { following = false; }, { passive: true });
}
document.addEventListener("keydown", (event) => {
  if (["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End", " "].includes(event.key) && event.target === document.body) following = false;
});

// The shortcut as this platform writes it, and none on a touch screen, which has no such keys.
const touch = matchMedia("(pointer: coarse)").matches || navigator.maxTouchPoints > 0;
const mac = /mac|iphone|ipad/i.test(navigator.userAgentData?.platform || navigator.platform || "");
ui.shortcutHint.textContent = touch ? "" : mac ? "; ⌘+Return writes, Esc stops" : "; Ctrl+Enter writes, Esc stops";

shared = restoreSettings(location.hash);
showValues();
document.body.classList.toggle("probabilities", ui.showProbabilities.checked); // kept over a reload
// A share link naming a model waits for the list to load that model first; otherwise the
// default loads at once and the picker appears meanwhile.
if (shared?.model) findModels(shared.model).finally(startWorker);
else {
  startWorker();
  findModels(null);
}
