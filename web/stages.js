// The downloads of a load, in stages whose bytes add up to the page's one load bar: each file
// fetched with its progress reported (`post`, the worker's message to the page), and the files
// the worker hands to Python checked against their sha256. The snapshot of a started Python is
// also kept, verified, in Cache Storage.

import { download, sha256Hex } from "./download.js";

// Starts the downloads of each stage (their bytes add up to one bar) and returns their promises:
// runtime ({snapshot}), packages, and model ({checkpoint, tokenizer}). Runtime files and wheels
// are fetched to count their bytes: the server marks them immutable, so Pyodide's own requests
// for them are answered from the browser's cache. When the page says this browser had them all
// before (`runtimeCached`), they are left to Pyodide: reading them twice from the cache costs
// a repeat visit a fifth of a second. The files this script hands to Python itself (snapshot,
// model) are always fetched, kept and checked against their sha256.
export function downloadAll(post, pyodideURL, files, modelURL, manifest, runtimeCached) {
  const stageOf = (name) => (name.startsWith("numpy-") ? "numpy" : name.startsWith("llama2np-") ? "llama2np" : "runtime");
  const byStage = {};
  for (const file of files) {
    const entry = { ...file, file: file.name, url: new URL(file.name, pyodideURL) };
    if (file.name === SNAPSHOT_FILE) Object.assign(entry, { keep: true, role: "snapshot", optional: true });
    else if (runtimeCached) continue;
    (byStage[stageOf(file.name)] ??= []).push(entry);
  }
  const stage = (name) => downloadStage(post, byStage[name] ?? []);
  const model = downloadStage(post, modelEntries(manifest, modelURL));
  const downloads = { runtime: stage("runtime"), packages: Promise.all([stage("numpy"), stage("llama2np")]), model };
  // A failure is reported once, by whichever step awaits it first; the others must not reject
  // unobserved meanwhile.
  for (const promise of Object.values(downloads)) promise.catch(() => {});
  return downloads;
}

// Each file's progress goes to the page, which adds them up into one bar (web/progress.js):
// its bytes so far and, once its response is in, its size on the wire; at most one message per
// file every 50 ms, and always its last.
let lastPost = 0;
function reporter(post, file) {
  const state = { type: "progress", stage: "file", url: file.url.href, bytes: file.bytes, done: 0, wire: 0 };
  post(state);
  return {
    wire(bytes) {
      state.wire = bytes;
      post(state);
    },
    restart() {
      state.done = 0;
      post(state);
    },
    bytes(n) {
      state.done += n;
      const now = performance.now();
      if (now - lastPost > 50 || state.done === state.bytes) {
        lastPost = now;
        post(state);
      }
    },
  };
}

// Downloads `files` at once, reporting each one's bytes; returns {role: bytes} of those kept,
// each checked against its sha256.
export async function downloadStage(post, files) {
  const kept = {};
  await Promise.all(
    files.map(async (file) => {
      const report = reporter(post, file);
      const stored = file.role === "snapshot" ? await readStoredSnapshot(file.url) : null;
      if (stored && (await sha256Hex(stored)) === file.sha256) {
        report.wire(1); // nothing travels; it counts as a finished file
        report.bytes(file.bytes);
        kept[file.role] = stored;
        return;
      }
      let bytes = await download(file.url, file.bytes, report.bytes, report.wire);
      if (!file.keep) return;
      let intact = (await sha256Hex(bytes)) === file.sha256;
      if (!intact && !file.optional) {
        // A copy the browser kept (the service worker's store, the HTTP cache) may have been
        // damaged since: fetched once more past every stored copy, which replaces it.
        console.warn(`${file.file} failed its sha256 check; downloading it again.`);
        report.restart();
        bytes = await download(file.url, file.bytes, report.bytes, report.wire, { cache: "reload" });
        intact = (await sha256Hex(bytes)) === file.sha256;
      }
      if (intact) {
        kept[file.role] = bytes;
        if (file.role === "snapshot") storeSnapshot(file.url, bytes);
      } else if (file.optional) {
        console.warn(`${file.file} arrived damaged; starting without it.`);
      } else {
        throw new Error(`The file ${file.file} arrived damaged (its sha256 does not match the site's manifest); press Retry, or tell the site's owner if it happens again.`);
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

// A site model's checkpoint and tokenizer, as entries for downloadStage.
export const modelEntries = (manifest, modelURL) => [
  { ...manifest.checkpoint, url: new URL(manifest.checkpoint.file, modelURL), keep: true, role: "checkpoint" },
  { ...manifest.tokenizer, url: new URL(manifest.tokenizer.file, modelURL), keep: true, role: "tokenizer" },
];
