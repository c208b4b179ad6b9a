// A load's downloads: every file of the site's runtime and model, fetched at once in its
// smallest form (download.js), counted into the page's one load bar, and checked against the
// sha256 the site lists. Pyodide's own requests for them are answered from these bytes
// (`answerPyodide`), so no host setting (MIME types, Content-Encoding) can get in its way.

import { download, fetchJSON, hostEncoding, route, sha256Hex } from "./download.js";

// The site's lists and how this host sends files: {listing (files.json), manifest (the
// model's), encoding ("br", "gzip" or ""), brotli (a promise of the decoder, or null)}.
export async function siteLists(pyodideURL, modelURL) {
  const [listing, manifest] = await Promise.all([
    fetchJSON(new URL("files.json", pyodideURL)),
    fetchJSON(new URL(modelURL)),
  ]);
  const encoding = await hostEncoding(new URL(listing.probe.name, pyodideURL));
  const brotli = encoding || !listing.brotli ? null : brotliDecoder(pyodideURL, listing.brotli);
  return { listing, manifest, encoding, brotli };
}

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

// Starts downloading `files` ({name, bytes, sha256, br?, gz?} in `folderURL`) and returns
// {name: promise of its checked bytes}. Each file's wire bytes go to the page (`post`).
export function downloadFiles(post, files, folderURL, site) {
  const downloads = {};
  for (const file of files) {
    const url = new URL(file.name, folderURL).href;
    downloads[file.name] = fetchChecked(post, file, url, site);
    downloads[file.name].catch(() => {}); // reported by whichever step awaits it first
  }
  return downloads;
}

async function fetchChecked(post, file, url, { encoding, brotli }) {
  let way = route(file, url, encoding, Boolean(brotli));
  const report = reporter(post, url, way.wire);
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
  let bytes = await get();
  if ((await sha256Hex(bytes)) !== file.sha256) {
    // A copy the browser kept (the service worker's store, the HTTP cache) may have been
    // damaged since: fetched once more past every stored copy, which replaces it.
    console.warn(`${file.name} failed its sha256 check; downloading it again.`);
    report.restart(way.wire);
    bytes = await get({ cache: "reload" });
    if ((await sha256Hex(bytes)) !== file.sha256) {
      throw new Error(`The file ${file.name} arrived damaged (its sha256 does not match the site's list); press Retry, or tell the site's owner if it happens again.`);
    }
  }
  report.done();
  return bytes;
}

// Each file's progress goes to the page, which adds them up into one bar (web/progress.js):
// its bytes on the wire so far and in all. All files together post at most one message every
// 50 ms, and each file always its last.
let lastPost = 0;
function reporter(post, url, wire) {
  const state = { type: "progress", stage: "file", url, wire, done: 0 };
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

// Pyodide fetches its WebAssembly, library zip, lock file and wheels itself; these requests
// are answered from the downloads (`prepared`: absolute URL -> promise of bytes), with the
// right type, whatever the host would have sent. The files in `counted` (URL -> listed file)
// go to the host as asked, and are counted and checked on a copy of the response. Other
// requests go out as usual. Returns a function whose promise settles once every counted file
// has arrived intact.
export function answerPyodide(post, encoding, prepared, counted) {
  const network = self.fetch.bind(self);
  const checks = [];
  self.fetch = (input, init) => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url, self.location.href).href;
    const bytes = prepared.get(url);
    if (bytes) {
      const type = url.endsWith(".wasm") ? "application/wasm" : url.endsWith(".json") ? "application/json" : "application/octet-stream";
      return bytes.then((body) => new Response(body, { headers: { "Content-Type": type } }));
    }
    const file = counted.get(url);
    const response = network(input, init);
    if (file) {
      const check = response.then((answer) => checkCopy(post, file, url, route(file, url, encoding, false), answer.clone()));
      check.catch(() => {});
      checks.push(check);
    }
    return response;
  };
  for (const [url, file] of counted) reporter(post, url, route(file, url, encoding, false).wire); // in the bar from the start
  return () => Promise.all(checks);
}

async function checkCopy(post, file, url, way, copy) {
  const report = reporter(post, url, way.wire);
  const bytes = await download(file, way, null, report.bytes, undefined, copy);
  if ((await sha256Hex(bytes)) !== file.sha256) {
    throw new Error(`The file ${file.name} arrived damaged (its sha256 does not match the site's list); press Retry, or tell the site's owner if it happens again.`);
  }
  report.done();
}

// --- the snapshot of a started Python, made in this browser -------------------------------

// Starting Python costs a visit most of its load time; restoring a snapshot of a started
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

export async function storeSnapshot(url, bytes) {
  if (!self.caches) return;
  try {
    const cache = await caches.open(SNAPSHOTS);
    for (const old of await cache.keys()) await cache.delete(old);
    const headers = { "Content-Type": "application/octet-stream", "X-Sha256": await sha256Hex(bytes) };
    await cache.put(url, new Response(bytes, { headers }));
  } catch {
    // without it the next visit starts afresh
  }
}

// A site model's checkpoint and tokenizer, downloaded and checked: {checkpoint, tokenizer}.
export async function downloadModel(post, manifest, modelURL, site) {
  const files = [manifest.checkpoint, manifest.tokenizer].map((entry) => ({ ...entry, name: entry.file }));
  const downloads = downloadFiles(post, files, modelURL, site);
  const [checkpoint, tokenizer] = await Promise.all(files.map((file) => downloads[file.name]));
  return { checkpoint, tokenizer };
}
