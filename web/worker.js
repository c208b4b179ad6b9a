// The model's home: Pyodide runs the llama2np Python package here, off the page's thread.
//
// Protocol (plain objects with a `type`; see web/app.js for the other side):
//   in:  load {pyodideURL, modelURL} | generate {id, prompt, temperature, topp, seed, steps}
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
let fromSnapshot = false; // whether this visit's Python came from a saved snapshot
let run = null; // {id, stopRequested}

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

async function load({ pyodideURL, modelURL }) {
  const started = performance.now();
  const [{ files }, manifest] = await Promise.all([
    fetchJSON(new URL("files.json", pyodideURL)),
    fetchJSON(new URL(modelURL)),
  ]);
  const modelFiles = await downloadAll(pyodideURL, files, modelURL, manifest);
  const downloaded = performance.now();

  post({ type: "progress", stage: "start", label: "Starting Python", done: 0, total: 0 });
  pyodide = await startPython(pyodideURL);
  const pythonStarted = performance.now();
  post({ type: "progress", stage: "start", label: "Loading NumPy and llama2np", done: 0, total: 0 });
  const failures = [];
  await pyodide.loadPackage(["numpy", "llama2np"], {
    messageCallback: () => {},
    errorCallback: (message) => failures.push(message),
  });
  if (failures.length) throw new Error(`Could not install the Python packages: ${failures.join(" ")}`);

  const packagesLoaded = performance.now();
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
    // Where the load time went, for `llama2np bench --browser`.
    stages: {
      download: (downloaded - started) / 1000,
      python: (pythonStarted - downloaded) / 1000,
      packages: (packagesLoaded - pythonStarted) / 1000,
      model: (performance.now() - packagesLoaded) / 1000,
    },
  });
}

// Downloads everything with one progress bar per stage. The runtime files are fetched only to
// count their bytes: the server marks them immutable, so Pyodide's own requests for them are
// answered from the browser's cache. The model's bytes are kept and checked against the manifest.
async function downloadAll(pyodideURL, files, modelURL, manifest) {
  const stageOf = (name) => (name.startsWith("numpy-") ? "numpy" : name.startsWith("llama2np-") ? "llama2np" : "runtime");
  const labels = { runtime: "Downloading Python", numpy: "Downloading NumPy", llama2np: "Downloading llama2np" };
  const byStage = {};
  for (const file of files) (byStage[stageOf(file.name)] ??= []).push(file);
  const stages = Object.entries(byStage).map(([stage, stageFiles]) =>
    downloadStage(stage, labels[stage], stageFiles.map((f) => ({ ...f, url: new URL(f.name, pyodideURL) }))),
  );
  const modelStage = downloadStage(`model`, `Downloading ${manifest.name}`, [
    { ...manifest.checkpoint, url: new URL(manifest.checkpoint.file, modelURL), keep: true, role: "checkpoint" },
    { ...manifest.tokenizer, url: new URL(manifest.tokenizer.file, modelURL), keep: true, role: "tokenizer" },
  ]);
  const [model] = await Promise.all([modelStage, ...stages]);
  return model;
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
      const bytes = await download(file.url, file.bytes, report);
      if (file.keep) {
        const digest = await sha256Hex(bytes);
        if (digest !== file.sha256) {
          throw new Error(`The file ${file.file} arrived damaged (its sha256 does not match the site's manifest); reload the page, or rebuild the site if it persists.`);
        }
        kept[file.role] = bytes;
      }
    }),
  );
  return kept;
}

// Pyodide's start (about 1.5 s, most of a visit's load time) is spent bringing up the
// interpreter. The first visit keeps a snapshot of its memory right after that start in the
// browser's Cache Storage; later visits restore it in a tenth of the time. The key is inside
// the content-hashed runtime folder, so a new runtime never meets an old snapshot. Pyodide
// snapshots only a bare interpreter, so packages are loaded afterwards either way.
const SNAPSHOTS = "llama2np-python-snapshots";

async function startPython(pyodideURL) {
  const { loadPyodide } = await import(new URL("pyodide.mjs", pyodideURL).href);
  const options = {
    indexURL: pyodideURL,
    lockFileURL: new URL("pyodide-lock.json", pyodideURL).href,
    stdout: () => {},
    stderr: (line) => console.warn(line),
  };
  const key = new URL("python-memory.snapshot", pyodideURL).href;
  const snapshot = await readSnapshot(key);
  if (snapshot) {
    try {
      const restored = await loadPyodide({ ...options, _loadSnapshot: snapshot });
      fromSnapshot = true;
      return restored;
    } catch {
      await forgetSnapshot(key); // unusable: start the slow way and make a new one
    }
  }
  const started = await loadPyodide({ ...options, _makeSnapshot: true });
  saveSnapshot(key, started).catch(() => {}); // without one, the next visit just starts slower
  return started;
}

async function readSnapshot(key) {
  if (!self.caches) return null; // Cache Storage needs a secure context (https or localhost)
  try {
    const response = await (await caches.open(SNAPSHOTS)).match(key);
    if (!response) return null;
    const snapshot = new Uint8Array(await response.arrayBuffer());
    // Pyodide does not survive a damaged snapshot (it never finishes starting), so only a
    // byte-exact copy of the one we saved is used.
    if ((await sha256Hex(snapshot)) === response.headers.get("X-Snapshot-SHA256")) return snapshot;
    await forgetSnapshot(key);
  } catch {
    // unreadable: start without it
  }
  return null;
}

async function saveSnapshot(key, started) {
  if (!self.caches) return;
  const snapshot = started.makeMemorySnapshot();
  const digest = await sha256Hex(snapshot);
  const cache = await caches.open(SNAPSHOTS);
  for (const old of await cache.keys()) await cache.delete(old); // one runtime at a time
  const headers = { "Content-Type": "application/octet-stream", "X-Snapshot-SHA256": digest };
  await cache.put(key, new Response(snapshot, { headers }));
}

async function forgetSnapshot(key) {
  try {
    await (await caches.open(SNAPSHOTS)).delete(key);
  } catch {
    // nothing to forget
  }
}

// --- generating ----------------------------------------------------------------------------

async function generate({ id, prompt, temperature, topp, seed, steps }) {
  if (!session) throw new Error("The model is not loaded yet.");
  if (run) {
    post({ type: "error", id, fatal: false, message: "A story is being written; stop it before starting another." });
    return;
  }
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
