// The page: settings in, story out. The model runs in web/worker.js; this file only talks to it.
//
// document.body.dataset.state is loading | ready | generating | error, and the element ids
// (prompt, temperature, topp, seed, steps, generate, stop, output, status) are a public
// contract the end-to-end tests rely on.

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
  retry: $("retry"),
  output: $("output"),
  status: $("status"),
  model: $("model"),
  progress: $("progress"),
  progressLabel: $("progress-label"),
};
const SETTINGS_KEY = "llama2np-settings"; // what the visitor typed survives a reload of the tab
const RUNTIME_KEY = "llama2np-runtime"; // the runtime folder this browser downloaded whole before
const SETTINGS = ["prompt", "temperature", "topp", "seed", "steps"];

let worker = null;
let model = null;
let runId = 0;
let current = null; // {id, continuation: Element}
const benchmarks = new Map(); // id -> {resolve, reject}

// --- state ---------------------------------------------------------------------------------

function setState(state) {
  document.body.dataset.state = state;
  const generating = state === "generating";
  ui.generate.disabled = state !== "ready";
  ui.stop.disabled = !generating;
  ui.retry.hidden = state !== "error";
  ui.output.setAttribute("aria-busy", String(generating));
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
  ui.progressLabel.textContent = "Starting…";
  ui.progress.removeAttribute("value");
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => handlers[data.type]?.(data);
  worker.onerror = (event) => {
    event.preventDefault();
    fail(`The model's worker stopped (${event.message || "it could not start"}); press Retry.`);
  };
  worker.postMessage({
    type: "load",
    pyodideURL: siteURL("llama2np-pyodide"),
    modelURL: siteURL("llama2np-model"),
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
  progress({ label, done, total }) {
    ui.progressLabel.textContent = total ? `${label}: ${megabytes(done)} of ${megabytes(total)} MB` : `${label}…`;
    if (total) ui.progress.value = done / total;
    else ui.progress.removeAttribute("value");
  },
  ready({ model: info, seconds, stages, fromSnapshot }) {
    model = info;
    window.llama2np.model = info;
    window.llama2np.loadSeconds = seconds;
    window.llama2np.loadStages = stages;
    window.llama2np.fromSnapshot = fromSnapshot;
    window.llama2np.readyMs = performance.now();
    remember(RUNTIME_KEY, siteURL("llama2np-pyodide"));
    const c = info.config;
    ui.model.textContent = `${info.name}: ${(info.parameters / 1000).toFixed(0)}K parameters, ${megabytes(info.bytes)} MB, context of ${c.seq_len} tokens.`;
    ui.steps.max = c.seq_len;
    setState("ready");
    say(`Ready in ${seconds.toFixed(1)} s. Type the start of a story, or just press Generate.`);
  },
  start({ id, promptText }) {
    if (id !== current?.id) return;
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = promptText;
    current.continuation = document.createElement("span");
    current.continuation.className = "continuation";
    ui.output.replaceChildren(prompt, current.continuation);
  },
  tokens({ id, text }) {
    if (id === current?.id && current.continuation) current.continuation.append(text);
  },
  done({ id, stopped, stats }) {
    if (id !== current?.id) return;
    current = null;
    window.llama2np.lastStats = stats;
    setState("ready");
    const firstMs = (stats.first_token_seconds * 1000).toFixed(0);
    const speed = stats.tokens_per_second ? `${stats.tokens_per_second.toFixed(0)} tokens/s` : "";
    say([`${stats.generated_tokens} tokens`, speed, `first token in ${firstMs} ms`, stopped ? "stopped" : ""].filter(Boolean).join(" · "));
  },
  error({ id, fatal, message }) {
    if (fatal) return fail(message);
    if (id !== undefined && id === current?.id) current = null;
    if (document.body.dataset.state !== "loading") setState("ready");
    say(message, "error");
  },
  "bench-result"({ id, results }) {
    benchmarks.get(id)?.resolve(results);
    benchmarks.delete(id);
  },
};

function fail(message) {
  current = null;
  setState("error");
  say(message, "error");
  for (const { reject } of benchmarks.values()) reject(new Error(message));
  benchmarks.clear();
}

// --- the controls --------------------------------------------------------------------------

function settings() {
  const steps = Number(ui.steps.value);
  const seed = Number(ui.seed.value);
  const maxSteps = model?.config.seq_len ?? 512;
  if (!Number.isInteger(steps) || steps < 1 || steps > maxSteps) {
    throw new Error(`Length must be a whole number from 1 to ${maxSteps}.`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 53) {
    throw new Error("Seed must be a whole number, 0 or more.");
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
    say(error.message, "error");
    return;
  }
  current = { id: ++runId, continuation: null };
  setState("generating");
  say("Writing…");
  worker.postMessage({ type: "generate", id: current.id, ...request });
}

function stop() {
  if (current) worker.postMessage({ type: "stop", id: current.id });
}

function showValues() {
  const t = Number(ui.temperature.value);
  ui.temperatureValue.textContent = t === 0 ? "0 (greedy)" : t.toFixed(2);
  ui.toppValue.textContent = Number(ui.topp.value).toFixed(2);
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
  try {
    const saved = JSON.parse(sessionStorage.getItem(SETTINGS_KEY) ?? "{}");
    for (const name of SETTINGS) if (typeof saved[name] === "string") ui[name].value = saved[name];
  } catch {
    // nothing saved, or storage disabled
  }
}

const megabytes = (bytes) => (bytes / 1e6).toFixed(1);

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
ui.retry.addEventListener("click", startWorker);
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
ui.form.addEventListener("input", () => {
  showValues();
  saveSettings();
});

restoreSettings();
showValues();
startWorker();
