// A load's downloads: every file of the site's runtime and model, fetched in its smallest form
// (download.js), counted into the page's one load bar, and checked against the sha256 the site
// lists. Pyodide's own requests for them are answered from these bytes (`answerPyodide`), so no
// host setting (MIME types, Content-Encoding) can get in its way.

import { download, fetchJSON, hostEncoding, route, sha256Hex } from "./download.js";
import { OUT } from "./protocol.js";

// The site's lists and how this host sends files: {listing (files.json), manifest (the
// model's), encoding ("br", "gzip" or ""), brotli (a promise of the decoder, or null)}.
export async function siteLists(pyodideURL, modelURL) {
  const [listing, manifest] = await Promise.all([
    fetchJSON(new URL("files.json", pyodideURL)),
    fetchJSON(new URL(modelURL)),
  ]);
  checkListing(listing, manifest);
  const encoding = await hostEncoding(new URL(listing.probe.name, pyodideURL));
  const brotli = encoding || !listing.brotli ? null : brotliDecoder(pyodideURL, listing.brotli);
  return { listing, manifest, encoding, brotli };
}

// The lists are the site's own, but a damaged or hand-edited one must end in a sentence, not in
// a download of a trillion bytes or a TypeError.
export function checkListing(listing, manifest) {
  const entries = [
    ...(Array.isArray(listing?.files) ? listing.files : [null]),
    ...(Array.isArray(listing?.brotli) ? listing.brotli : []),
    listing?.probe,
    manifest?.checkpoint && { ...manifest.checkpoint, name: manifest.checkpoint.file },
    manifest?.tokenizer && { ...manifest.tokenizer, name: manifest.tokenizer.file },
  ];
  const size = (n, limit) => Number.isSafeInteger(n) && n > 0 && n <= limit;
  const names = Array.isArray(listing?.files) ? listing.files.map((file) => file?.name) : [];
  const complete = REQUIRED.every((name) => names.includes(name)) && new Set(names).size === names.length;
  for (const entry of entries) {
    const intact = entry && typeof entry.name === "string" && /^[\w.-]+$/.test(entry.name)
      && size(entry.bytes, MAX_FILE_BYTES) && /^[0-9a-f]{64}$/.test(entry.sha256)
      && ["br", "gz"].every((sibling) => entry[sibling] === undefined || size(entry[sibling], entry.bytes + 65536));
    if (!intact || !complete) {
      throw new Error("The site's list of files is damaged (files.json or a model's manifest.json); rebuild the site with `llama2np build`, or tell the site's owner.");
    }
  }
}
const MAX_FILE_BYTES = 4 * 2 ** 30; // no file of a site can be larger than the page's memory
const REQUIRED = ["pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"];

// The site's Brotli decoder (a small WebAssembly module, fetched gzip-compressed), or null
// where it cannot run: its files then come as .gz instead.
async function brotliDecoder(pyodideURL, [script, wasm]) {
  try {
    const [module, bytes] = await Promise.all([
      import(new URL(script.name, pyodideURL).href),
      download(wasm, route(wasm, new URL(wasm.name, pyodideURL).href, "", false), null, () => {}),
    ]);
    if ((await sha256Hex(bytes)) !== wasm.sha256) return null;
    module.initSync({ module: bytes });
    return module;
  } catch (error) {
    console.warn(`The Brotli decoder could not start (${error?.message ?? error}); using gzip.`);
    return null;
  }
}

// Starts downloading `files` ({name, bytes, sha256, br?, gz?} in `folderURL`), once `gate` (a
// promise) has settled, and returns {name: promise of its checked bytes}. Each file is in the
// load bar at once; its wire bytes go to the page (`post`) as they arrive.
export function downloadFiles(post, files, folderURL, site, gate = null) {
  const downloads = {};
  for (const file of files) {
    const url = new URL(file.name, folderURL).href;
    downloads[file.name] = fetchChecked(post, file, url, site, gate);
    downloads[file.name].catch(() => {}); // reported by whichever step awaits it first
  }
  return downloads;
}

async function fetchChecked(post, file, url, { encoding, brotli }, gate) {
  let way = route(file, url, encoding, Boolean(brotli));
  const report = reporter(post, url, way.wire);
  if (gate) await gate.catch(() => {}); // a failure there is reported there
  const get = async (init) => {
    let bytes;
    try {
      bytes = await download(file, way, brotli, report.bytes, init);
    } catch (error) {
      if (!error.missingSibling) throw error;
      // The site was copied without its .br and .gz files: the file as it is, then.
      console.warn(`${error.message}; fetching ${file.name} as it is. Copy the whole site to the host to send less.`);
      way = { url, decode: "", wire: file.bytes };
      report.restart(way.wire);
      return download(file, way, null, report.bytes, init);
    }
    if (bytes) return bytes;
    way = route(file, url, encoding, false); // the decoder could not start: the .gz then
    report.restart(way.wire);
    return download(file, way, null, report.bytes, init);
  };
  // A copy the browser kept (the service worker's store, the HTTP cache) may be damaged or cut
  // short: whatever goes wrong the first time, the file is fetched once more past every stored
  // copy, which replaces it.
  let bytes;
  try {
    bytes = await get();
    if ((await sha256Hex(bytes)) !== file.sha256) throw damaged(file);
  } catch (error) {
    if (error.quiet) throw error; // a host that stopped sending: the visitor decides
    console.warn(`${file.name}: ${error?.message ?? error}; downloading it again.`);
    report.restart(way.wire);
    bytes = await get({ cache: "reload" });
    if ((await sha256Hex(bytes)) !== file.sha256) throw damaged(file);
  }
  report.done();
  return bytes;
}

const damaged = (file) => new Error(`The file ${file.name} arrived damaged (its sha256 does not match the site's list); try again, or tell the site's owner if it happens again.`);

// Each file's progress goes to the page, which adds them up into one bar (web/progress.js):
// its bytes on the wire so far and in all. All files together post at most one message every
// 50 ms, and each file always its last.
let lastPost = 0;
function reporter(post, url, wire) {
  const state = { type: OUT.PROGRESS, stage: "file", url, wire, done: 0 };
  post(state);
  return {
    restart(total) {
      state.wire = wire = total;
      state.done = 0;
      post(state);
    },
    bytes(n) {
      state.done = Math.min(wire, state.done + n);
      const now = performance.now();
      if (now - lastPost > 50) {
        lastPost = now;
        post(state);
      }
    },
    done() {
      state.done = wire;
      post(state);
    },
  };
}

// Pyodide fetches its WebAssembly, library zip, lock file and wheels itself. A request for a
// file the worker downloads (`downloaded(url)`, a promise of its bytes, or undefined) is answered
// from those bytes, with the right type, whatever the host would have sent. The files in
// `counted` (URL -> listed file) go to the host as asked, so that the browser can keep the
// machine code it compiles from them, and are counted and checked on a copy of the response;
// one the host sends with a wrong type is handed over as bytes of the right one. Other requests
// go out as usual. `arrived` settles once every counted file has arrived intact.
export function answerPyodide(post, encoding, counted, downloaded) {
  const network = self.fetch.bind(self);
  const arrivals = new Map();
  for (const [url, file] of counted) {
    const report = reporter(post, url, route(file, url, encoding, false).wire); // in the bar from the start
    let settle;
    const arrival = new Promise((resolve, reject) => (settle = { resolve, reject }));
    arrivals.set(url, { file, report, arrival, settle });
  }
  self.fetch = (input, init) => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url, self.location.href).href;
    const bytes = downloaded(url);
    if (bytes) return bytes.then((body) => new Response(body, { headers: { "Content-Type": typeOf(url) } }));
    const waiting = arrivals.get(url);
    if (!waiting) return network(input, init);
    return network(input, init).then((response) => {
      if (!response.ok) {
        const failed = new Error(`Could not download ${waiting.file.name} (HTTP ${response.status}); the site may be incomplete. Try again, or tell the site's owner.`);
        waiting.settle.reject(failed);
        throw failed;
      }
      const way = route(waiting.file, url, encoding, false);
      const check = checkCopy(waiting.file, way, response.clone(), waiting.report);
      // A damaged copy in the browser's cache would come back on every visit: replaced now, so
      // that Retry gets a good one.
      check.catch(() => network(url, { cache: "reload" }).then((fresh) => fresh.arrayBuffer()).catch(() => {}));
      check.then(waiting.settle.resolve, waiting.settle.reject);
      if ((response.headers.get("Content-Type") ?? "").split(";")[0].trim() === typeOf(url)) return response;
      return check.then((body) => new Response(body, { headers: { "Content-Type": typeOf(url) } }));
    }, (error) => {
      waiting.settle.reject(error);
      throw error;
    });
  };
  const arrived = Promise.all([...arrivals.values()].map(({ arrival }) => arrival));
  arrived.catch(() => {});
  return { arrived };
}

const typeOf = (url) => (url.endsWith(".wasm") ? "application/wasm" : url.endsWith(".json") ? "application/json" : "application/octet-stream");

async function checkCopy(file, way, copy, report) {
  const bytes = await download(file, way, null, report.bytes, undefined, copy);
  if ((await sha256Hex(bytes)) !== file.sha256) throw damaged(file);
  report.done();
  return bytes;
}

// --- the snapshot of a started Python, made in this browser -------------------------------

// Starting Python costs a visit much of its load time; restoring a snapshot of a started
// interpreter costs a fraction. The first visit makes one (web/worker.js) and keeps it here,
// with its sha256, under the runtime's content-hashed address: a later visit restores it if it
// is intact, and starts afresh otherwise. Cache Storage needs a secure context (https or
// localhost); elsewhere every visit starts afresh.
const SNAPSHOTS = "llama2np-python-snapshot";

export async function readSnapshot(url) {
  if (!self.caches) return null;
  try {
    const response = await (await caches.open(SNAPSHOTS)).match(url);
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    if ((await sha256Hex(bytes)) === response.headers.get("X-Sha256")) return bytes;
    console.warn("The stored snapshot of Python failed its sha256 check; starting afresh.");
  } catch {
    // unreadable: start afresh
  }
  return null;
}

// Keeps `bytes` as the snapshot of the runtime at `url`, in place of this site's older ones
// (another site on the same origin keeps its own).
export async function storeSnapshot(url, bytes) {
  if (!self.caches) return;
  try {
    const cache = await caches.open(SNAPSHOTS);
    const site = new URL("..", url).href;
    for (const old of await cache.keys()) {
      if (new URL("..", old.url).href === site) await cache.delete(old);
    }
    const headers = { "Content-Type": "application/octet-stream", "X-Sha256": await sha256Hex(bytes) };
    await cache.put(url, new Response(bytes, { headers }));
  } catch {
    // without it the next visit starts afresh
  }
}

export async function forgetSnapshot(url) {
  try {
    if (self.caches) await (await caches.open(SNAPSHOTS)).delete(url);
  } catch {
    // nothing stored, or nothing to be done
  }
}

// A site model's checkpoint and tokenizer, downloaded (once `gate` has settled) and checked:
// {checkpoint, tokenizer}.
export async function downloadModel(post, manifest, modelURL, site, gate = null) {
  const files = [manifest.checkpoint, manifest.tokenizer].map((entry) => ({ ...entry, name: entry.file }));
  const downloads = downloadFiles(post, files, modelURL, site, gate);
  const [checkpoint, tokenizer] = await Promise.all(files.map((file) => downloads[file.name]));
  return { checkpoint, tokenizer };
}
