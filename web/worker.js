// The model's home: Pyodide runs the llama2np Python package here, off the page's thread.
//
// Protocol (plain objects with a `type`; see web/app.js for the other side):
//   in:  load {pyodideURL, modelURL, runtimeCached} | generate {id, prompt, temperature, topp, seed, steps}
//        | stop {id} | bench {id, steps, promptTokens, repeats, engines}
//   out: progress {stage, label, done, total} | ready {model, seconds, fromSnapshot, stages}
//        | start {id, promptText}
//        | tokens {id, text} | done {id, stopped, stats} | bench-result {id, results}
//        | error {id?, fatal, message}
//
// All model work happens in Python (llama2np.session.Session); this file moves bytes and
// messages, and hands control back to the event loop between slices of generation so that
// Stop is seen within a few milliseconds.

import { download, fetchJSON, sha256Hex } from "./download.js";

const SLICE_SECONDS = 0.012; // Python's share of each turn; Stop waits at most this long
const POST_EVERY_MS = 16; // at most one `tokens` message per frame

let pyodide = null;
let session = null;
let fromSnapshot = false; // whether this visit's Python came from the site's snapshot
let run = null; // {id, stopRequested}
let warming = false; // a warm-up story is being written (see warmUp)

const post = (message) => self.postMessage(message);

self.onmessage = ({ data }) => {
  const handlers = { load, generate, stop, bench };
  const handler = handlers[data?.type];
  if (!handler) {
    post({ type: "error", fatal: false, message: `The worker does not know the request "${data?.type}".` });
    return;
  }
  handler(data).catch((error) => post({ type: "error", id: data.id, fatal: data.type === "load", message: sentence(error) }));
};

// --- loading -------------------------------------------------------------------------------

// Everything downloads at once and Pyodide starts at once: it loads its script while the
// snapshot of a started interpreter (shipped by the site) arrives, then restores it. NumPy and
// llama2np install as soon as their wheels are in, and the model is read last.
async function load({ pyodideURL, modelURL, runtimeCached = false }) {
  const started = performance.now();
  const [{ files }, manifest] = await Promise.all([
    fetchJSON(new URL("files.json", pyodideURL)),
    fetchJSON(new URL(modelURL)),
  ]);
  const downloads = downloadAll(pyodideURL, files, modelURL, manifest, runtimeCached);
  let downloaded = null;
  downloads.runtime.then(() => {
    downloaded = performance.now();
    post({ type: "progress", stage: "start", label: "Starting Python", done: 0, total: 0 });
  }, () => {});
  pyodide = await startPython(pyodideURL, downloads.runtime);
  const pythonStarted = performance.now();
  await downloads.packages;
  post({ type: "progress", stage: "start", label: "Installing NumPy and llama2np", done: 0, total: 0 });
  const failures = [];
  await pyodide.loadPackage(["numpy", "llama2np"], {
    messageCallback: () => {},
    errorCallback: (message) => failures.push(message),
  });
  if (failures.length) throw new Error(`Could not install the Python packages: ${failures.join(" ")}`);

  const packagesLoaded = performance.now();
  const modelFiles = await downloads.model;
  post({ type: "progress", stage: "start", label: "Reading the model", done: 0, total: 0 });
  const { Session } = pyodide.pyimport("llama2np.session");
  // toPy copies the bytes into Python's memory once, as a memoryview.
  const checkpoint = pyodide.toPy(modelFiles.checkpoint);
  const tokenizer = pyodide.toPy(modelFiles.tokenizer);
  try {
    session = Session(checkpoint, tokenizer, manifest.checkpoint.file, manifest.tokenizer.file);
  } finally {
    checkpoint.destroy();
    tokenizer.destroy();
  }
  const info = toJs(session.info());
  post({
    type: "ready",
    model: { ...info, name: manifest.name, bytes: manifest.checkpoint.bytes, parameters: manifest.parameters },
    seconds: (performance.now() - started) / 1000,
    fromSnapshot,
    // Where the load time went, for `llama2np bench --browser`: each stage counts from the end
    // of the one before, so a stage that waited for its download includes the wait.
    stages: {
      download: (downloaded - started) / 1000,
      python: (pythonStarted - downloaded) / 1000,
      packages: (packagesLoaded - pythonStarted) / 1000,
      model: (performance.now() - packagesLoaded) / 1000,
    },
  });
  warmUp().catch(() => {}); // a failure here would show, with its sentence, on the first story
}

// V8 runs new WebAssembly in its baseline tier and optimises the hot functions only after they
// have run a while, so a visitor's first story would be written at a third of the speed of the
// next (about 1,000 against 3,000 tokens/s here). A silent greedy story, written in slices
// while they type their prompt, gets NumPy's loops optimised first; any request stops it.
const WARM_UP_STEPS = 256;

async function warmUp() {
  warming = true;
  try {
    toJs(session.start("", 0, 0.9, 1, WARM_UP_STEPS));
    while (warming && !run && !session.done) {
      session.advance(SLICE_SECONDS);
      await nextTurn();
    }
  } finally {
    warming = false;
  }
}

// Starts one download per stage, each with its progress bar, and returns their promises:
// runtime ({snapshot}), packages, and model ({checkpoint, tokenizer}). Runtime files and wheels
// are fetched to count their bytes: the server marks them immutable, so Pyodide's own requests
// for them are answered from the browser's cache. When the page says this browser had them all
// before (`runtimeCached`), they are left to Pyodide: reading them twice from the cache costs
// a repeat visit a fifth of a second. The files this script hands to Python itself (snapshot,
// model) are always fetched, kept and checked against their sha256.
function downloadAll(pyodideURL, files, modelURL, manifest, runtimeCached) {
  const stageOf = (name) => (name.startsWith("numpy-") ? "numpy" : name.startsWith("llama2np-") ? "llama2np" : "runtime");
  const labels = { runtime: "Downloading Python", numpy: "Downloading NumPy", llama2np: "Downloading llama2np" };
  const byStage = {};
  for (const file of files) {
    const entry = { ...file, file: file.name, url: new URL(file.name, pyodideURL) };
    if (file.name === SNAPSHOT_FILE) Object.assign(entry, { keep: true, role: "snapshot", optional: true });
    else if (runtimeCached) continue;
    (byStage[stageOf(file.name)] ??= []).push(entry);
  }
  const stage = (name) => downloadStage(name, labels[name], byStage[name] ?? []);
  const model = downloadStage("model", `Downloading ${manifest.name}`, [
    { ...manifest.checkpoint, url: new URL(manifest.checkpoint.file, modelURL), keep: true, role: "checkpoint" },
    { ...manifest.tokenizer, url: new URL(manifest.tokenizer.file, modelURL), keep: true, role: "tokenizer" },
  ]);
  const downloads = { runtime: stage("runtime"), packages: Promise.all([stage("numpy"), stage("llama2np")]), model };
  // A failure is reported once, by whichever step awaits it first; the others must not reject
  // unobserved meanwhile.
  for (const promise of Object.values(downloads)) promise.catch(() => {});
  return downloads;
}

async function downloadStage(stage, label, files) {
  const total = files.reduce((sum, f) => sum + f.bytes, 0);
  let done = 0;
  let lastPost = 0;
  const report = (bytes) => {
    done += bytes;
    const now = performance.now();
    if (now - lastPost > 50 || done === total) {
      lastPost = now;
      post({ type: "progress", stage, label, done, total });
    }
  };
  const kept = {};
  await Promise.all(
    files.map(async (file) => {
      const stored = file.role === "snapshot" ? await readStoredSnapshot(file.url) : null;
      if (stored && (await sha256Hex(stored)) === file.sha256) {
        report(file.bytes);
        kept[file.role] = stored;
        return;
      }
      const bytes = await download(file.url, file.bytes, report);
      if (!file.keep) return;
      if ((await sha256Hex(bytes)) === file.sha256) {
        kept[file.role] = bytes;
        if (file.role === "snapshot") storeSnapshot(file.url, bytes);
      } else if (file.optional) {
        console.warn(`${file.file} arrived damaged; starting without it.`);
      } else {
        throw new Error(`The file ${file.file} arrived damaged (its sha256 does not match the site's manifest); reload the page, or rebuild the site if it persists.`);
      }
    }),
  );
  return kept;
}

// Starting CPython takes about 1.5 s, most of a visit's load time; restoring the snapshot of a
// started interpreter that `llama2np build` made from these very files takes a fifth of that.
// The snapshot was made with `random` seeded for reproducible bytes, so it is reseeded here.
// Without a usable snapshot Python starts the slow way.
const SNAPSHOT_FILE = "python-snapshot.bin";

// The browser's HTTP cache keeps the snapshot as the server sent it, brotli-compressed, and
// decoding its 25 MB again costs a repeat visit a tenth of a second; so a verified copy is also
// kept as plain bytes in Cache Storage, under its content-hashed address (one at a time).
// It is checked by sha256 like a download before use, and anything unusable is just skipped.
const SNAPSHOTS = "llama2np-python-snapshot";

async function readStoredSnapshot(url) {
  if (!self.caches) return null; // Cache Storage needs a secure context (https or localhost)
  try {
    const response = await (await caches.open(SNAPSHOTS)).match(url.href);
    return response ? new Uint8Array(await response.arrayBuffer()) : null;
  } catch {
    return null;
  }
}

function storeSnapshot(url, bytes) {
  if (!self.caches) return;
  (async () => {
    const cache = await caches.open(SNAPSHOTS);
    for (const old of await cache.keys()) await cache.delete(old);
    await cache.put(url.href, new Response(bytes, { headers: { "Content-Type": "application/octet-stream" } }));
  })().catch(() => {}); // without it the next visit reads the snapshot from the HTTP cache
}

async function startPython(pyodideURL, runtimeDownload) {
  const { loadPyodide } = await import(new URL("pyodide.mjs", pyodideURL).href);
  const options = {
    indexURL: pyodideURL,
    lockFileURL: new URL("pyodide-lock.json", pyodideURL).href,
    stdout: () => {},
    stderr: (line) => console.warn(line),
  };
  // Pyodide takes the snapshot as a promise and loads its own script meanwhile.
  const snapshot = runtimeDownload.then(({ snapshot }) => snapshot ?? Promise.reject(new Error("no usable snapshot")));
  try {
    const restored = await loadPyodide({ ...options, _loadSnapshot: snapshot });
    restored.runPython("import random; random.seed()");
    fromSnapshot = true;
    return restored;
  } catch (error) {
    await runtimeDownload; // a failed download is reported as such
    console.warn(`Python could not start from its snapshot (${sentence(error)}); starting afresh.`);
  }
  return loadPyodide(options);
}

// --- generating ----------------------------------------------------------------------------

async function generate({ id, prompt, temperature, topp, seed, steps }) {
  if (!session) throw new Error("The model is not loaded yet.");
  if (run) {
    post({ type: "error", id, fatal: false, message: "A story is being written; stop it before starting another." });
    return;
  }
  warming = false;
  const current = (run = { id, stopRequested: false });
  try {
    const started = toJs(session.start(prompt, temperature, topp, seed, steps));
    if (started.error) {
      post({ type: "error", id, fatal: false, message: started.error });
      return;
    }
    post({ type: "start", id, promptText: started.prompt_text });
    let pending = "";
    let lastPost = performance.now();
    while (!current.stopRequested && !session.done) {
      pending += session.advance(SLICE_SECONDS);
      const now = performance.now();
      if (pending && now - lastPost >= POST_EVERY_MS) {
        post({ type: "tokens", id, text: pending });
        pending = "";
        lastPost = now;
      }
      await nextTurn();
    }
    if (pending) post({ type: "tokens", id, text: pending });
    post({ type: "done", id, stopped: current.stopRequested && !session.done, stats: toJs(session.stats()) });
  } finally {
    run = null;
  }
}

async function stop({ id }) {
  if (run && (id === undefined || run.id === id)) run.stopRequested = true;
}

async function bench({ id, steps = 256, promptTokens = 100, repeats = 3, engines = null }) {
  if (!session) throw new Error("The model is not loaded yet.");
  warming = false;
  const results = toJs(session.bench(steps, promptTokens, repeats, engines));
  post({ type: "bench-result", id, results });
}

// --- helpers -------------------------------------------------------------------------------

// A message to ourselves is the quickest way back to the event loop (a nested setTimeout is
// clamped to 4 ms), and it lets a waiting `stop` message run first.
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()?.();
function nextTurn() {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

// Python dicts and lists as plain JavaScript values, freeing the proxy.
function toJs(value) {
  if (!value || typeof value.toJs !== "function") return value;
  try {
    return value.toJs({ dict_converter: Object.fromEntries });
  } finally {
    value.destroy();
  }
}

// A sentence a person can act on, never a traceback: Python errors arrive with the whole
// traceback in their message; the last line holds the exception and its sentence.
function sentence(error) {
  const text = String(error?.message ?? error ?? "unknown error").trim();
  if (error?.type || text.startsWith("Traceback")) {
    const last = text.split("\n").filter(Boolean).pop() ?? text;
    const match = last.match(/^[\w.]+(?:Error|Exception): (.*)$/);
    return match ? capitalize(match[1]) : `Python failed: ${last}`;
  }
  return capitalize(text);
}

const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);
