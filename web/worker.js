// The model's home: Pyodide runs the llama2np Python package here, off the page's thread.
//
// The messages it takes and sends are defined in web/protocol.js.
//
// All model work happens in Python (llama2np.runtime.session.Session); this file moves bytes and
// messages, and hands control back to the event loop between slices of generation so that
// Stop is seen within a few milliseconds.

import { fetchJSON, giveUpAfter } from "./download.js";
import { IN, OUT } from "./protocol.js";
import { answerPyodide, checkListing, downloadFiles, downloadModel, forgetSnapshot, readSnapshot, siteLists, storeSnapshot } from "./stages.js";

const SLICE_SECONDS = 0.012; // Python's share of each turn; Stop waits at most this long
// Pyodide 0.27's WebAssembly memory can grow to 4 GiB; Python and NumPy hold part of it already.
const WASM_MEMORY_LIMIT = 4 * 2 ** 30;
const HEADER_BYTES = 256; // of a visitor's file, enough for llama2np.runtime.checkpoint.read_header
const POST_EVERY_MS = 16; // at most one `tokens` message per frame

let pyodide = null;
let session = null;
let fromSnapshot = false; // whether this visit's Python came from the site's snapshot
let run = null; // {id, stopRequested}
let warming = false; // a warm-up story is being written (see warmUp)
let currentSite = null; // how this site's files are fetched (stages.js siteLists)

const post = (message) => self.postMessage(message);

self.onmessage = ({ data }) => {
  const handlers = {
    [IN.LOAD]: load, [IN.MODEL]: switchModel, [IN.GENERATE]: generate, [IN.CONTINUE]: continueStory,
    [IN.STOP]: stop, [IN.EXPLAIN]: explainStory, [IN.BENCH]: bench, [IN.OPEN]: openOwnModel,
  };
  const handler = handlers[data?.type];
  if (!handler) {
    post({ type: OUT.ERROR, fatal: false, message: `The worker does not know the request "${data?.type}".` });
    return;
  }
  handler(data).catch((error) => post({ type: OUT.ERROR, id: data.id, fatal: data.type === IN.LOAD || Boolean(error?.fatal), message: sentence(error) }));
};

// --- loading -------------------------------------------------------------------------------

// Everything downloads at once while Pyodide starts: its script and WebAssembly come first,
// Python starts (from this browser's snapshot of a started Python when it has one), NumPy and
// llama2np install as soon as their wheels are in, and the model is read last.
async function load({ pyodideURL, modelURL, quietSeconds }) {
  const started = performance.now();
  giveUpAfter(quietSeconds);
  const site = await siteLists(pyodideURL, modelURL);
  currentSite = site;
  const { listing, manifest } = site;
  const own = (file) => !fetchedByPyodide(file.name, site.encoding);
  const address = (file) => new URL(file.name, pyodideURL).href;
  // What Python's start needs comes first; the wheels and the model take the link after it.
  const first = listing.files.filter((file) => STARTS_PYTHON.has(file.name));
  const counted = new Map(first.filter((file) => !own(file) && file.name.endsWith(".wasm")).map((file) => [address(file), file]));
  const deferred = {};
  const fromPyodide = answerPyodide(post, site.encoding, counted,
    (url) => deferred[url]); // the worker's own downloads, below
  const early = downloadFiles(post, first.filter(own), pyodideURL, site);
  const gate = Promise.all([...Object.values(early), fromPyodide.arrived]);
  const later = downloadFiles(post, listing.files.filter((file) => own(file) && !STARTS_PYTHON.has(file.name)), pyodideURL, site, gate);
  const runtime = { ...early, ...later };
  for (const file of listing.files.filter(own)) deferred[address(file)] = runtime[file.name];
  const model = downloadModel(post, manifest, modelURL, site, gate);
  post({ type: OUT.PROGRESS, stage: "listed" });
  // A download that fails ends the load with its sentence, whichever step was waiting for it.
  const failure = firstFailure([...Object.values(runtime), fromPyodide.arrived, model]);
  const snapshotURL = new URL(SNAPSHOT_FILE, pyodideURL).href;
  const snapshot = readSnapshot(snapshotURL);
  if (!site.encoding) await Promise.race([runPyodideScript(pyodideURL, runtime["pyodide.asm.js"]), failure]);
  const downloaded = performance.now();
  post({ type: OUT.PROGRESS, stage: "start", label: "Starting Python" });
  const made = await Promise.race([startPython(pyodideURL, await snapshot, snapshotURL, listing.preimport, gate), failure]);
  const pythonStarted = performance.now();
  post({ type: OUT.PROGRESS, stage: "install", label: "Installing NumPy and llama2np" });
  const failures = [];
  await pyodide.loadPackage(["numpy", "llama2np"], {
    messageCallback: () => {},
    errorCallback: (message) => failures.push(message),
  });
  if (failures.length) throw new Error(`Could not install the Python packages (${failures.join(" ")}); try again.`);

  const packagesLoaded = performance.now();
  const modelFiles = await Promise.race([model, failure]);
  post({ type: OUT.PROGRESS, stage: "model", label: "Reading the model" });
  openSession(manifest, modelFiles);
  // Where the load time went, for `llama2np bench --browser`: each stage counts from the end
  // of the one before, so a stage that waited for its download includes the wait.
  postReady(manifest, modelURL, started, {
    download: (downloaded - started) / 1000,
    python: (pythonStarted - downloaded) / 1000,
    packages: (packagesLoaded - pythonStarted) / 1000,
    model: (performance.now() - packagesLoaded) / 1000,
  });
  if (made) storeSnapshot(snapshotURL, made);
  warmUp().catch(() => {}); // a failure here would show, with its sentence, on the first story
}

// What Python's start needs; the rest waits for these to arrive, so that they do not share the
// link with the wheels and the model.
const STARTS_PYTHON = new Set(["pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]);

// A promise that rejects as the first of `promises` does, and never settles otherwise.
function firstFailure(promises) {
  const failed = Promise.race(promises.map((promise) => promise.then(() => new Promise(() => {}))));
  failed.catch(() => {});
  return failed;
}

// The files Pyodide fetches itself: its loader always; where the host compresses, also its
// script and WebAssembly, so that the browser keeps the machine code it compiles for the next
// visit (it cannot for bytes handed over). The worker downloads the rest.
const fetchedByPyodide = (name, encoding) => name === "pyodide.js" || (encoding && name.startsWith("pyodide.asm."));

// Pyodide's script (its WebAssembly's JavaScript half), where the host sends files as they
// are: the downloaded, checked bytes run from a blob: address, and where the host's policy
// forbids that, the script comes from the host as it is.
async function runPyodideScript(pyodideURL, download) {
  const address = URL.createObjectURL(new Blob([await download], { type: "text/javascript" }));
  try {
    await import(address);
  } catch {
    console.warn("This host's policy forbids scripts from blob: addresses; fetching Pyodide's script as it is.");
    await import(new URL("pyodide.asm.js", pyodideURL).href);
  } finally {
    URL.revokeObjectURL(address);
  }
}

// The snapshot this browser keeps of a started Python (stages.js), under this address.
const SNAPSHOT_FILE = "python-snapshot.bin";

// Starts Python: from `stored`, a snapshot of a started interpreter (kept at `snapshotURL`),
// when it restores; else
// afresh, importing the standard library the page uses (`preimport`) and returning a snapshot
// of that interpreter for the next visit (where the browser can keep one).
async function startPython(pyodideURL, stored, snapshotURL, preimport, arrived) {
  // Pyodide waits forever when its WebAssembly is refused; a module of eight bytes asks first.
  try {
    new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
  } catch (error) {
    // A page's WebAssembly is refused only by a Content-Security-Policy: the host's header.
    throw new Error("The host's Content-Security-Policy forbids WebAssembly, which the model runs on; add 'wasm-unsafe-eval' to its script-src, or remove the header.");
  }
  let loadPyodide;
  try {
    ({ loadPyodide } = await import(new URL("pyodide.js", pyodideURL).href));
  } catch (error) {
    throw new Error(`Could not load Pyodide's loader, pyodide.js (${error?.message ?? error}); try again, or tell the site's owner.`);
  }
  const options = {
    indexURL: pyodideURL,
    lockFileURL: new URL("pyodide-lock.json", pyodideURL).href,
    env: { PYTHONOPTIMIZE: "2" }, // the site's modules are compiled without docstrings
    stdout: () => {},
    stderr: (line) => console.warn(line),
  };
  if (stored) {
    try {
      pyodide = await started(loadPyodide({ ...options, _loadSnapshot: stored }), arrived);
      pyodide.runPython("import random; random.seed()");
      fromSnapshot = true;
      return null;
    } catch (error) {
      await forgetSnapshot(snapshotURL); // it would fail again on the next visit
      console.warn(`Python could not start from its snapshot (${sentence(error)}); starting afresh.`);
    }
  }
  const keep = Boolean(self.caches);
  pyodide = await started(loadPyodide({ ...options, _makeSnapshot: keep }), arrived);
  if (!keep) return null;
  pyodide.runPython(`import ${preimport.join(", ")}`);
  return pyodide.makeMemorySnapshot();
}

// The site's model of these files as the worker's session. The session of the model before is
// freed first, so two large models never share the WebAssembly memory.
function openSession(manifest, files) {
  warming = false;
  session?.destroy();
  session = null;
  pyodide.runPython("import gc; gc.collect()");
  const { checkpoint, tokenizer } = files;
  delete files.checkpoint; // the JavaScript copies go with newSession's call
  delete files.tokenizer;
  session = newSession(checkpoint, tokenizer, `${manifest.name}'s checkpoint`, `${manifest.name}'s tokenizer`);
}

// A Python Session of a checkpoint's and a tokenizer's bytes. toPy copies each into Python's
// memory once, as a memoryview the model's weights are views of; the proxies are freed here.
function newSession(checkpointBytes, tokenizerBytes, checkpointName, tokenizerName) {
  const { Session } = pyodide.pyimport("llama2np.runtime.session");
  const checkpoint = pyodide.toPy(checkpointBytes);
  const tokenizer = pyodide.toPy(tokenizerBytes);
  try {
    return Session(checkpoint, tokenizer, checkpointName, tokenizerName);
  } finally {
    checkpoint.destroy();
    tokenizer.destroy();
  }
}

function postReady(manifest, modelURL, started, stages) {
  const info = toJs(session.info());
  post({
    type: OUT.READY,
    model: { ...info, name: manifest.name, bytes: manifest.checkpoint.bytes + manifest.tokenizer.bytes, parameters: manifest.parameters, manifest: modelURL },
    seconds: (performance.now() - started) / 1000,
    fromSnapshot,
    // What this worker fetched, for the page's service worker to keep for offline visits.
    resources: performance.getEntriesByType("resource").map((entry) => entry.name).filter((url) => url.startsWith("http")),
    stages,
  });
}

// Another of the site's models, chosen in the page's picker: downloaded (or taken from the
// browser's store) and checked like the first, then read into the same Python. A failed
// download leaves the model before loaded; a model that fails once downloaded leaves none (the
// old one was freed to make room) and is reported as fatal: Retry reloads.
async function switchModel({ modelURL }) {
  if (!pyodide) throw new Error("Python is not started yet; wait for the page to be ready.");
  if (run) throw new Error("A story is being written; stop it before choosing another model.");
  const started = performance.now();
  const site = { ...currentSite, manifest: await fetchJSON(new URL(modelURL)) };
  const { manifest } = site;
  checkListing(site.listing, manifest);
  const download = downloadModel(post, manifest, modelURL, site);
  post({ type: OUT.PROGRESS, stage: "listed" });
  const files = await download;
  post({ type: OUT.PROGRESS, stage: "model", label: "Reading the model" });
  try {
    openSession(manifest, files);
  } catch (error) {
    error.fatal = true; // no model is left: the one before was freed
    throw error;
  }
  postReady(manifest, modelURL, started, { model: (performance.now() - started) / 1000 });
  warmUp().catch(() => {});
}


// V8 runs new WebAssembly in its baseline tier and optimises the hot functions only after they
// have run a while, so a visitor's first story would be written far slower than the next
// (docs/speed.md). A silent greedy story, written in slices
// while they type their prompt, gets NumPy's loops optimised first; any request stops it.
const WARM_UP_STEPS = 256;

async function warmUp() {
  warming = true;
  try {
    toJs(session.start.callKwargs({ prompt: "", temperature: 0, topp: 0.9, seed: 1, steps: WARM_UP_STEPS }));
    while (warming && !run && !session.done) {
      session.advance(SLICE_SECONDS);
      await nextTurn();
    }
  } finally {
    warming = false;
  }
}

// Pyodide waits forever when its WebAssembly cannot be instantiated: it only logs a warning,
// which is taken here as the failure it is. And whatever else may stall it, once every file
// Python's start needs has arrived intact, it gets STALL_SECONDS to start.
const STALL_SECONDS = 60;
const INSTANTIATION_FAILED = "wasm instantiation failed!"; // Pyodide 0.27's words

async function started(starting, arrived) {
  const stalled = (message) => Object.assign(new Error(message), { stalled: true });
  const warn = console.warn;
  let timer;
  const failed = new Promise((_, reject) => {
    console.warn = (...args) => {
      warn(...args);
      if (args[0] === INSTANTIATION_FAILED) reject(stalled("Python's WebAssembly could not be instantiated; try again."));
    };
    arrived.then(() => {
      timer = setTimeout(() => reject(stalled(`Python did not start within ${STALL_SECONDS} s of its files arriving; try again.`)), STALL_SECONDS * 1000);
    }, reject);
  });
  try {
    return await Promise.race([starting, failed]);
  } finally {
    console.warn = warn;
    clearTimeout(timer);
  }
}

// --- the visitor's own model ---------------------------------------------------------------

// Replaces the model with the visitor's files (web/own-model.js hands them over). They are told
// apart and sized by Python from their first bytes (llama2np.runtime.own_files), so what cannot fit is
// refused before either is read. Until the new model is read whole, the old one stays: a file
// that cannot be used leaves the page as it was, with a sentence (`open-failed`). `heap` is the
// WebAssembly memory before and after, in bytes.
async function openOwnModel({ id, files }) {
  try {
    if (!pyodide) throw new Error("The page is still loading; open the model files once it is ready.");
    if (run) throw new Error("A story is being written; stop it before opening a model.");
    const heapBefore = wasmMemory();
    const starts = await Promise.all(files.map((file) => readFile(file.slice(0, HEADER_BYTES), file.name)));
    const { plan_opening } = pyodide.pyimport("llama2np.runtime.own_files");
    const lists = [files.map((file) => file.name), files.map((file) => file.size), starts].map((list) => pyodide.toPy(list));
    let plan;
    try {
      plan = toJs(plan_opening(...lists, WASM_MEMORY_LIMIT - heapBefore, WASM_MEMORY_LIMIT));
    } finally {
      for (const list of lists) list.destroy();
    }
    if (plan.error) throw new Error(plan.error);
    const [checkpointFile, tokenizerFile] = [files[plan.checkpoint], files[plan.tokenizer]];
    warming = false;
    const started = performance.now();
    const [checkpointBytes, tokenizerBytes] = await Promise.all([checkpointFile, tokenizerFile].map((file) => readFile(file)));
    const opened = newSession(checkpointBytes, tokenizerBytes, checkpointFile.name, tokenizerFile.name);
    const old = session;
    session = opened;
    old?.destroy(); // the last reference to the old model: Python frees it now
    const info = toJs(session.info());
    post({
      type: OUT.OPENED,
      id,
      model: { ...info, name: checkpointFile.name, bytes: checkpointFile.size + tokenizerFile.size },
      seconds: (performance.now() - started) / 1000,
      heap: { before: heapBefore, after: wasmMemory() },
    });
    warmUp().catch(() => {});
  } catch (error) {
    post({ type: OUT.OPEN_FAILED, id, message: memorySentence(sentence(error, false)) });
  }
}

// A File's bytes, or of a slice of it (which has no name of its own).
async function readFile(file, name = file.name) {
  try {
    return new Uint8Array(await file.arrayBuffer());
  } catch (error) {
    throw new Error(`${name} could not be read (${error?.message ?? error}); open it again.`);
  }
}

const wasmMemory = () => pyodide._module.HEAPU8.buffer.byteLength;

function memorySentence(message) {
  return /MemoryError|out of memory|Array buffer allocation failed/i.test(message)
    ? "This page ran out of memory reading the model; use a smaller model, or run it with `llama2np generate`."
    : message;
}

// --- generating ----------------------------------------------------------------------------

async function generate({ id, prompt, temperature, topp, seed, steps, explain = false }) {
  if (!session) throw new Error("The model is not loaded yet.");
  if (run) {
    post({ type: OUT.ERROR, id, fatal: false, message: "A story is being written; stop it before starting another." });
    return;
  }
  warming = false;
  const current = (run = { id, stopRequested: false, explain: Boolean(explain) });
  try {
    const started = toJs(session.start.callKwargs({ prompt, temperature, topp, seed, steps, explain: current.explain }));
    if (started.error) {
      post({ type: OUT.ERROR, id, fatal: false, message: started.error });
      return;
    }
    post({ type: OUT.START, id, promptText: started.prompt_text, seed: started.seed, steps: started.steps });
    await write(current);
  } finally {
    run = null;
  }
}

// Goes on with the last story (cut off by its length or stopped) up to the whole context: the
// same tokens a longer Length would have written (Session.extend).
async function continueStory({ id }) {
  if (!session) throw new Error("The model is not loaded yet.");
  if (run) {
    post({ type: OUT.ERROR, id, fatal: false, message: "A story is being written; stop it before continuing." });
    return;
  }
  const current = (run = { id, stopRequested: false, explain: false });
  try {
    const extended = toJs(session.extend(0));
    if (extended.error) {
      post({ type: OUT.ERROR, id, fatal: false, message: extended.error });
      return;
    }
    current.explain = true; // explanations() is empty unless the story was started with them
    post({ type: OUT.CONTINUED, id, steps: extended.steps, takenBack: extended.taken_back });
    await write(current);
  } finally {
    run = null;
  }
}

// Writes in slices until the end or Stop, posting the text at most once a frame.
async function write(current) {
  const { id } = current;
  let pending = "";
  let pieces = [];
  let lastPost = performance.now();
  const flush = () => {
    post(pieces.length ? { type: OUT.TOKENS, id, text: pending, pieces } : { type: OUT.TOKENS, id, text: pending });
    pending = "";
    pieces = [];
  };
  while (!current.stopRequested && !session.done) {
    pending += session.advance(SLICE_SECONDS);
    if (current.explain) pieces.push(...toJs(session.explanations()));
    const now = performance.now();
    if (pending && now - lastPost >= POST_EVERY_MS) {
      flush();
      lastPost = now;
    }
    await nextTurn();
  }
  if (pending || pieces.length) flush();
  const ending = toJs(session.ending());
  post({
    type: OUT.DONE,
    id,
    stopped: current.stopRequested && !session.done,
    ended: ending.ended,
    canContinue: ending.can_continue,
    stats: toJs(session.stats()),
  });
}

async function stop({ id }) {
  if (run && (id === undefined || run.id === id)) run.stopRequested = true;
}

// The last story's probabilities, for a story written without them: one batched pass.
async function explainStory({ id }) {
  if (!session) throw new Error("The model is not loaded yet.");
  if (run) throw new Error("A story is being written; wait for it to end.");
  warming = false;
  const explained = toJs(session.explain_story());
  if (explained.error) throw new Error(explained.error);
  post({ type: OUT.EXPLAINED, id, tokens: explained.tokens });
}

async function bench({ id, steps = 256, promptTokens = 100, repeats = 3, engines = null }) {
  if (!session) throw new Error("The model is not loaded yet.");
  warming = false;
  const results = toJs(session.bench(steps, promptTokens, repeats, engines));
  post({ type: OUT.BENCH_RESULT, id, results });
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
// Sentences that begin with a file's name (the visitor's own files) keep its spelling.
function sentence(error, capital = true) {
  const text = String(error?.message ?? error ?? "unknown error").trim();
  const start = capital ? capitalize : (words) => words;
  if (error?.type || text.startsWith("Traceback")) {
    const last = text.split("\n").filter(Boolean).pop() ?? text;
    const match = last.match(/^[\w.]+(?:Error|Exception): (.*)$/);
    return match ? start(match[1]) : `Python failed: ${last}`;
  }
  return start(text);
}

const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);
