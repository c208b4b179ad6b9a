// The page: settings in, story out. The model runs in a worker behind web/story-writer.js; this
// file keeps the page's one state object and shows it.
//
// document.body.dataset.state is loading | ready | generating | error, dataset.ended is
// end | length | stopped after a story, and the element ids (prompt, temperature, topp, seed,
// steps, generate, stop, output, status, seed-used, continue, share, copy, download,
// show-probabilities, open-model) are a public contract the end-to-end tests rely on.

import { megabytes, modelPicker, parameters, siteModels } from "./models.js";
import { keepOffline } from "./offline.js";
import { listenForModelFiles } from "./own-model.js";
import { settleDirection } from "./direction.js";
import { readSettings, restoreSettings, saveSettings } from "./settings.js";
import { sharedNote, shareURL, storyFile } from "./share.js";
import { StoryWriter } from "./story-writer.js";
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
  footerData: $("footer-data"),
  sourceCode: $("source-code"),
  actions: document.querySelector(".actions-bar"),
};

// Everything the page remembers, changed only through transition().
const state = {
  phase: "loading", // loading | ready | generating | error (body[data-state])
  ended: null, // how the story shown ended: end | length | stopped (body[data-ended])
  writer: null, // the StoryWriter, one per load (Retry makes another)
  model: null, // the loaded model's info, or null
  run: null, // the Story being written, or null
  story: null, // the story shown: {prompt, temperature, topp, seed, steps, model?, explained, live, own,
  //              finished, ending, generated, written, canContinue}; live: written with its
  //              probabilities; ending: the sentence its end was told with
  models: [], // the site's models (web/models.js); the picker shows when there are several
  chosen: null, // the model the visitor chose, or null for the site's default
  picker: null, // the <select id="model-select">
  shared: null, // the settings of the share link the page was opened with, if any
  interacted: false, // whether the visitor has used a key or a pointer on this page yet
  following: false, // whether the page scrolls along as the story grows (see follow)
};

// The one way the state changes: the controls, the body's data attributes and the keyboard
// focus follow from it.
function transition(changes) {
  Object.assign(state, changes);
  const { phase, story } = state;
  document.body.dataset.state = phase;
  if (state.ended) document.body.dataset.ended = state.ended;
  else delete document.body.dataset.ended;
  const generating = phase === "generating";
  const written = phase === "ready" && Boolean(story?.finished);
  ui.generate.disabled = phase !== "ready";
  ui.stop.disabled = !generating;
  ui.retry.hidden = phase !== "error";
  ui.continue.disabled = !(phase === "ready" && story?.canContinue); // always there, to be found
  if (state.picker) state.picker.disabled = !(phase === "ready" || phase === "error");
  for (const button of [ui.copy, ui.download]) button.disabled = !written;
  ui.share.disabled = !written || story.own; // a link cannot carry the visitor's own files
  ui.output.setAttribute("aria-busy", String(generating));
  // Only a change of phase disables controls; the first key press (interacted) must not move
  // the focus before the browser acts on it.
  if ("phase" in changes) keepFocus(generating ? ui.stop : phase === "error" ? ui.retry : ui.generate);
}

// A control that was just disabled or hidden drops the keyboard focus to <body>, where Enter
// does nothing; the focus moves to the control that does the next sensible thing instead. A
// page that nobody has touched yet keeps its focus where the browser put it.
function keepFocus(next) {
  const active = document.activeElement;
  const lost = !active || active === document.body;
  if (lost ? state.interacted : active.disabled || active.hidden || active.closest("[hidden]")) {
    next.focus({ preventScroll: true });
  }
}

function say(message, kind = "info") {
  ui.status.textContent = message;
  ui.status.dataset.kind = kind;
}

const why = explainer(ui.output, ui.why, () => ui.showProbabilities.checked && ui.output.classList.contains("explained"));

// --- loading -------------------------------------------------------------------------------

// Where a <meta> tag of the page says a part of the site is, as an absolute address.
const siteURL = (name) => new URL(document.querySelector(`meta[name="${name}"]`).content, document.baseURI).href;

function showProgress(fraction, label) {
  ui.progress.value = fraction;
  ui.progressLabel.textContent = label;
}

function load() {
  state.writer?.close();
  ui.model.textContent = "Loading the model…";
  say("");
  const writer = new StoryWriter({
    pyodide: siteURL("llama2np-pyodide"),
    model: state.chosen?.manifestURL ?? siteURL("llama2np-model"),
    onProgress: showProgress,
    onFailure: (message) => state.writer === writer && fail(message),
  });
  transition({ phase: "loading", writer, model: null, run: null });
  writer.ready.then(() => state.writer === writer && loaded(), (error) => state.writer === writer && fail(error.message));
}

// The model is in: the page is ready, and kept for offline visits.
function loaded() {
  const { info, loaded: { seconds, stages, fromSnapshot, resources } } = state.writer;
  Object.assign(window.llama2np, { model: info, loadSeconds: seconds, loadStages: stages, fromSnapshot, readyMs: performance.now() });
  showModel(info);
  transition({ phase: "ready", model: info });
  const next = state.shared ? sharedNote(state.shared) : "Type the start of a story, or just press Generate.";
  say(`Ready in ${seconds.toFixed(1)} s. ${next}`);
  keepOffline({
    resources,
    extra: [ui.sourceCode.href],
    folders: state.models.map((m) => m.manifestURL), // the site's other models: kept if they were
    onKept() {
      ui.offline.hidden = false;
      document.body.dataset.offline = "ready";
    },
  });
}

// The worker stopped for good (or never started): Retry starts another. The status says so in
// one sentence; what went wrong (file names, HTTP codes, the host's settings) is one click away.
function fail(message) {
  if (!state.model) ui.model.textContent = "The model could not be loaded.";
  markStale();
  transition({ phase: "error", run: null });
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "What went wrong";
  details.append(summary, message);
  ui.status.replaceChildren(`${state.model ? "The model stopped" : "The model could not be loaded"}; press Retry. `, details);
  ui.status.dataset.kind = "error";
}

// The model card (name, parameters, size and context) and the footer's words about the model.
function showModel(info) {
  const c = info.config;
  const name = document.createElement("bdi"); // a file's name may be written right to left
  name.textContent = info.name;
  ui.model.replaceChildren(name, `: ${parameters(info.parameters)} parameters, ${megabytes(info.bytes)} MB, context of ${c.seq_len} tokens.`);
  ui.footerModel.textContent = info.name;
  // TinyStories is credited for llama2.c's stories models, not for a model of the visitor's.
  ui.footerData.hidden = Boolean(info.own) || !/^stories\d/.test(info.name);
  ui.offline.textContent = info.own
    ? "Works offline: this page and the site's model are kept in your browser; your own model's files are not, so open them again after a reload. "
    : "Works offline: this page and its model are kept in your browser. ";
  ui.steps.max = c.seq_len;
  // A Length beyond the context (from a link made on a larger model) means the whole of it, as
  // run.c's -n does.
  if (Number(ui.steps.value) > c.seq_len) ui.steps.value = String(c.seq_len);
}

// The visitor's own checkpoint and tokenizer, read by the worker (web/own-model.js).
async function openModel(files) {
  if (state.phase !== "ready") {
    say(state.phase === "generating" ? "Stop the story before opening a model." : "Open the model files once the page is ready.", "error");
    return;
  }
  transition({ phase: "loading" });
  say(`Reading ${files.map((file) => file.name).join(" and ")}…`);
  try {
    const info = await state.writer.open(files);
    window.llama2np.model = info;
    window.llama2np.openedHeap = state.writer.loaded.heap;
    showModel(info);
    ui.output.replaceChildren();
    ui.seedUsed.textContent = "";
    transition({ phase: "ready", model: info, story: null, ended: null });
    say(`${info.name} is ready (read in ${state.writer.loaded.seconds.toFixed(1)} s); it stays in this page and is sent nowhere, so Share is off for its stories.`);
  } catch (error) {
    if (state.phase === "error") return; // the worker stopped: fail() said so
    transition({ phase: "ready" }); // the model before stays loaded
    say(error.message, "error");
  }
}

// --- the site's models ---------------------------------------------------------------------

// Reads the site's list of models and, with several, shows the picker. A share link's model
// (`model=` in its fragment) is chosen when the site has it.
async function findModels(sharedName) {
  if (!document.querySelector('meta[name="llama2np-models"]')) return; // a page of one model
  const models = await siteModels(siteURL("llama2np-models"), document.baseURI);
  const chosen = models.find((m) => m.name === sharedName) ?? null;
  const picker = models.length < 2 ? null : modelPicker(ui.model, models, chosen ?? models[0], chooseModel);
  transition({ models, chosen, picker });
}

// Another model, read by the same Python (the worker frees the one before). When it cannot be
// downloaded, the one before stays loaded and chosen; after a failure the picker starts afresh.
async function chooseModel(next) {
  const before = state.model;
  transition({ chosen: next });
  if (state.phase !== "ready") return load();
  markStale();
  say("");
  ui.model.textContent = `Loading ${next.name}…`;
  transition({ phase: "loading", model: null });
  try {
    await state.writer.use(next.manifestURL, showProgress);
    loaded();
  } catch (error) {
    if (state.phase === "error") return; // the worker stopped: fail() said so
    const chosen = state.models.find((m) => m.manifestURL === before?.manifest) ?? state.chosen;
    if (chosen) state.picker.value = String(state.models.indexOf(chosen));
    if (before) showModel(before);
    showProgress(1, "Ready");
    transition({ phase: "ready", model: before, chosen });
    say(error.message, "error");
  }
}

// --- writing -------------------------------------------------------------------------------

async function generate() {
  if (state.phase !== "ready") return; // a second click while writing does nothing
  let request;
  try {
    request = readSettings(state.model?.config.seq_len ?? 512);
  } catch (error) {
    markStale();
    say(error.message, "error");
    return;
  }
  if (state.picker && state.model) request.model = state.models.find((m) => m.manifestURL === state.model.manifest)?.name;
  const explain = ui.showProbabilities.checked;
  const { prompt, temperature, topp, seed, steps } = request;
  const run = state.writer.generate(prompt, { temperature, topp, seed, steps, probabilities: explain });
  const started = await begin(run, "Writing…");
  if (!started) return;
  ui.seedUsed.textContent = `· seed ${started.seed}`;
  const promptSpan = document.createElement("span");
  promptSpan.className = "prompt";
  promptSpan.textContent = started.promptText;
  const continuation = document.createElement("span");
  continuation.className = "continuation";
  continuation.dir = "auto";
  ui.output.replaceChildren(promptSpan, continuation);
  ui.output.classList.toggle("explained", explain);
  delete ui.output.dataset.stale;
  why.reset();
  transition({ story: { ...request, seed: started.seed, steps: started.steps, explained: explain, live: explain, own: Boolean(state.model?.own), canContinue: false } });
  showStory();
  await write(run, continuation);
}

async function continueStory() {
  if (state.phase !== "ready" || !state.story?.canContinue) return;
  const continuation = ui.output.querySelector(".continuation");
  const run = state.writer.continue();
  // tokens come with their probabilities only when the story began with them
  transition({ story: { ...state.story, canContinue: false, explained: state.story.live } });
  const started = await begin(run, "Writing on…");
  if (!started) return;
  transition({ story: { ...state.story, steps: started.steps } });
  if (started.takenBack) takeBack(continuation, started.takenBack);
  await write(run, continuation);
}

// The story `run` is under way: the page says so and waits for the model to begin it. Returns
// what `run.started` gives, or null when the model refused it (the page has said why).
async function begin(run, message) {
  why.hide();
  transition({ phase: "generating", run, ended: null, following: true });
  say(message);
  showStory();
  try {
    return await run.started;
  } catch (error) {
    runFailed(run, error);
    return null;
  }
}

// Shows the story's pieces as they come, then how it ended.
async function write(run, continuation) {
  try {
    for await (const { text, tokens } of run) {
      if (state.run !== run) return;
      if (!tokens) {
        continuation.append(text);
      } else {
        const spans = tokens.map(tokenSpan);
        continuation.append(...spans);
        if (spans.length && !ui.output.querySelector('.token[tabindex="0"]')) spans[0].tabIndex = 0;
        // a length end can flush a cut character (U+FFFD) that belongs to no token
        const tokensText = tokens.map((token) => token.text).join("");
        if (text.length > tokensText.length) continuation.append(text.slice(tokensText.length));
      }
      settleDirection(continuation);
      follow();
    }
    const result = await run.finished;
    if (state.run !== run) return;
    ended(result);
  } catch (error) {
    runFailed(run, error);
  }
}

function ended({ stopped, ended: how, canContinue, stats }) {
  window.llama2np.lastStats = stats;
  // A stopped story is shared and saved as the Length it reached, which writes it again.
  const before = state.story.generated ?? 0; // a continued story's tokens written before
  const end = stopped ? "stopped" : how;
  const start = stats.prompt_tokens ? ` (${stats.prompt_tokens} of them the start's)` : "";
  const endings = {
    end: "The model ended the story.",
    length: canContinue ? `Cut off at Length ${state.story.steps}${start}; Continue writes on.` : "The context is full.",
    stopped: "Stopped; Continue writes on.",
  };
  // The ending is said again after the story's explanation, which replaces the status.
  const story = { ...state.story, canContinue, finished: true, ending: endings[end], generated: stats.generated_tokens, written: stats.prompt_tokens + stats.generated_tokens };
  transition({ phase: "ready", run: null, story, ended: end });
  const speed = stats.tokens_per_second ? ` at ${Math.round(stats.tokens_per_second).toLocaleString("en")} tokens/s` : "";
  const wrote = stats.generated_tokens - before;
  const count = `${wrote}${before ? " more" : ""} token${wrote === 1 ? "" : "s"}`;
  const first = before ? "" : `, the first after ${(stats.first_token_seconds * 1000).toFixed(0)} ms`;
  say(`Wrote ${count}${speed}${first}. ${endings[end]}`);
  follow(); // the status may have grown the pinned bar over the story's last line
  transition({ following: false });
  if (ui.showProbabilities.checked && !story.explained) explainStory(true);
}

// A story the model refused (too long a start, say): the page is ready for another.
function runFailed(run, error) {
  if (state.run !== run || state.phase === "error") return; // the worker stopped: fail() said so
  markStale();
  transition({ phase: "ready", run: null });
  say(error.message, "error");
}

function stop() {
  state.run?.stop();
}

// An error leaves the last story on the page, marked as the one before it, not as its result.
function markStale() {
  if (ui.output.textContent) ui.output.dataset.stale = "true";
  transition({ following: false, ended: null, story: state.story && { ...state.story, canContinue: false } });
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

// --- following the story -------------------------------------------------------------------

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
  if (!state.following) return;
  const end = ui.output.getBoundingClientRect().bottom;
  const room = visibleBottom() - 8;
  if (end > room) window.scrollBy({ top: end - room, behavior: "instant" });
}

// --- the settings --------------------------------------------------------------------------

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
  transition({ shared: link });
  showValues();
  saveSettings();
  const other = link.model && state.models.find((m) => m.name === link.model);
  if (other && other.manifestURL !== state.model?.manifest && state.picker) {
    state.picker.value = String(state.models.indexOf(other));
    chooseModel(other);
  } else if (state.phase === "ready") {
    say(sharedNote(link));
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
const storySettings = () => ({ ...state.story, steps: state.ended === "stopped" ? state.story.written : state.story.steps });

async function share() {
  const url = shareURL(location.href, storySettings());
  history.replaceState(null, "", url);
  ui.share.dataset.url = url;
  if (await toClipboard(url, "Link")) say("Link copied, and in the address bar: it opens this page with this story's start and settings.");
}

function download() {
  const settings = storySettings();
  const url = state.story.own ? null : shareURL(location.href, settings);
  const { name, text } = storyFile(settings, storyText(), state.model?.name ?? "model", url);
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
  if (state.story?.finished && !state.story.explained && state.phase === "ready") explainStory();
}

// The story on screen, written without its probabilities, explained as it stands: the worker
// works them out in one pass, and its text becomes the tokens' spans.
async function explainStory(quietly = false) {
  const story = state.story;
  const continuation = ui.output.querySelector(".continuation");
  if (!quietly) say("Working out how likely each word was…");
  let tokens;
  try {
    tokens = await state.writer.explain();
  } catch (error) {
    if (state.story === story) say(error.message, "error");
    return;
  }
  const text = continuation.textContent;
  const tokensText = tokens.map((token) => token.text).join("");
  if (state.story !== story || !text.startsWith(tokensText)) return; // another story since
  continuation.replaceChildren(...tokens.map(tokenSpan), text.slice(tokensText.length));
  ui.output.classList.add("explained");
  why.reset();
  transition({ story: { ...story, explained: true } });
  if (!quietly) say(`Each piece of a word is coloured by how likely it was; ${touch ? "tap one" : "point at one, or tab to the story,"} to see why. ${story.ending ?? ""}`.trim());
}

// --- for the benchmark and tests (no eval needed under the page's policy) -------------------

window.llama2np = {
  model: null,
  loadSeconds: null,
  loadStages: null,
  fromSnapshot: null,
  readyMs: null,
  bench(options = {}) {
    if (state.phase !== "ready") return Promise.reject(new Error("The page is not ready."));
    return state.writer.bench(options);
  },
};

// --- wiring --------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  generate();
});
ui.stop.addEventListener("click", stop);
ui.continue.addEventListener("click", continueStory);
ui.retry.addEventListener("click", load);
ui.copy.addEventListener("click", () => toClipboard(storyText(), "Story"));
ui.download.addEventListener("click", download);
ui.share.addEventListener("click", share);
ui.showProbabilities.addEventListener("change", toggleProbabilities);
listenForModelFiles(ui.openModel, openModel);
ui.randomSeed.addEventListener("click", () => {
  ui.seed.value = String(1 + Math.floor(Math.random() * 2 ** 31));
  saveSettings();
});
// Ctrl+Enter (⌘+Return) writes wherever the focus is, as the hint says.
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.repeat) {
    event.preventDefault();
    generate();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.run) {
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
// The setting last touched shows its hint on a phone (a slider takes no focus from a touch).
ui.form.addEventListener("pointerdown", (event) => {
  const field = event.target.closest(".field");
  for (const other of ui.form.querySelectorAll(".field[data-touched]")) if (other !== field) delete other.dataset.touched;
  if (field) field.dataset.touched = "";
});
window.addEventListener("hashchange", openSharedLink);
for (const type of ["keydown", "pointerdown"]) {
  document.addEventListener(type, () => transition({ interacted: true }), { capture: true, once: true });
}
// The visitor scrolling while a story is written: the page stops following it.
for (const type of ["wheel", "touchmove"]) {
  window.addEventListener(type, () => state.following && transition({ following: false }), { passive: true });
}
document.addEventListener("keydown", (event) => {
  if (["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End", " "].includes(event.key) && event.target === document.body && state.following) {
    transition({ following: false });
  }
});

// The shortcut as this platform writes it, and none on a touch screen, which has no such keys.
const touch = matchMedia("(pointer: coarse)").matches || navigator.maxTouchPoints > 0;
const mac = /mac|iphone|ipad/i.test(navigator.userAgentData?.platform || navigator.platform || "");
ui.shortcutHint.textContent = touch ? "" : mac ? "; ⌘+Return writes, Esc stops" : "; Ctrl+Enter writes, Esc stops";

transition({ shared: restoreSettings(location.hash) });
showValues();
document.body.classList.toggle("probabilities", ui.showProbabilities.checked); // kept over a reload
// A share link naming a model waits for the list to load that model first; otherwise the
// default loads at once and the picker appears meanwhile.
if (state.shared?.model) findModels(state.shared.model).finally(load);
else {
  load();
  findModels(null);
}
