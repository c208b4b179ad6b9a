// Downloads for the worker: compressed bytes from any static host, byte counts, and failures
// phrased for people.
//
// `llama2np build` writes a .br and a .gz sibling beside each file that compresses, and lists
// their sizes. A host that looks for such siblings (llama2np serve, nginx's gzip_static) sends
// them by itself, with a Content-Encoding; most hosts send files as they are. So the page asks
// once (`hostEncoding`, on a small probe file) and then either asks for each file itself, or for
// its .br sibling, decoded here with the site's Brotli decoder, or its .gz, which the browser
// inflates (DecompressionStream).

// The browser's own fetch, kept before the worker answers Pyodide's requests itself
// (stages.js answerPyodide): a download asks the network, never those answers.
const network = self.fetch.bind(self);

const nameOf = (url) => decodeURIComponent(new URL(url).pathname.split("/").pop() || String(url));

async function request(url, init) {
  let response;
  try {
    response = await network(url, init);
  } catch {
    throw new Error(`Could not reach the server for ${nameOf(url)}; check the connection, then try again.`);
  }
  if (!response.ok) {
    if (response.status >= 400 && response.status < 500 && /\.(br|gz)$/.test(new URL(url).pathname)) {
      const missing = new Error(`${nameOf(url)} is missing from the host`);
      missing.missingSibling = true; // stages.js asks for the file itself instead
      throw missing;
    }
    throw new Error(`Could not download ${nameOf(url)} (HTTP ${response.status}); the site may be incomplete. Try again, or tell the site's owner.`);
  }
  return response;
}

export async function fetchJSON(url) {
  const response = await request(url);
  try {
    return await response.json();
  } catch {
    throw new Error(`The file ${nameOf(url)} is not valid JSON; the site is damaged. Try again, or tell the site's owner.`);
  }
}

// "br" or "gzip" when the host compressed the probe file itself, else "" (it sends files as
// they are, or the probe is missing: the page then fetches the compressed siblings).
export async function hostEncoding(probeURL) {
  let response;
  try {
    response = await network(probeURL);
    await response.arrayBuffer();
  } catch {
    throw new Error(`Could not read ${nameOf(probeURL)} from the server (a broken connection, or a Content-Encoding the host sends wrongly); check the connection, then try again, or tell the site's owner.`);
  }
  const encoding = (response.headers.get("Content-Encoding") ?? "").trim().toLowerCase();
  return response.ok && (encoding === "br" || encoding === "gzip") ? encoding : "";
}

// How to get one listed file ({name, bytes, br?, gz?} at `url`): which address to ask, how to
// decode what comes, and how many bytes it takes on the wire.
export function route(file, url, encoding, brotli) { // brotli: whether the decoder is coming
  if (encoding) return { url, decode: "", wire: file[encoding === "br" ? "br" : "gz"] ?? file.bytes };
  if (file.br && brotli) return { url: `${url}.br`, decode: "br", wire: file.br };
  if (file.gz) return { url: `${url}.gz`, decode: "gzip", wire: file.gz };
  return { url, decode: "", wire: file.bytes };
}

// The file's bytes, fetched by its route, decoded and checked against its expected size; null
// when the route needs the Brotli decoder (`brotli`, a promise) and it could not start.
// `onWire(n)` counts bytes as they arrive on the wire (estimated where the browser decoded).
// `init` is fetch's (`{cache: "reload"}` passes by every stored copy); `response`, one already
// had for `way.url`.
export async function download(file, way, brotli, onWire, init = undefined, response = undefined) {
  const quiet = new AbortController(); // a host that stops sending is given up on
  response ??= await request(way.url, { ...init, signal: quiet.signal });
  // A host may send a .gz with its own Content-Encoding, which the browser has undone.
  const decode = response.headers.get("Content-Encoding") ? "" : way.decode;
  const scale = decode ? 1 : way.wire / file.bytes;
  let body = response.body;
  if (decode === "gzip") body = counted(body, onWire).pipeThrough(new DecompressionStream("gzip"));
  else if (decode === "br") body = counted(body, onWire);
  else body = counted(body, (n) => onWire(n * scale));
  let bytes;
  try {
    bytes = await collect(body, decode === "br" ? way.wire : file.bytes, way.url, quiet);
    if (decode === "br") {
      const decoder = await brotli;
      if (!decoder) return null;
      bytes = decoder.decompress(bytes);
    }
  } catch (error) {
    if (error.sentence) throw error;
    // A broken connection and a damaged file look alike from here.
    throw new Error(`The file ${nameOf(way.url)} did not arrive whole or could not be decoded (${error?.message ?? error}); try again, or tell the site's owner if it happens again.`);
  }
  if (bytes.length !== file.bytes) {
    throw new Error(`The file ${nameOf(way.url)} arrived incomplete (${bytes.length} of ${file.bytes} bytes); try again.`);
  }
  return bytes;
}

// A stream that reports each chunk's size as it passes.
function counted(stream, onBytes) {
  return stream.pipeThrough(new TransformStream({ transform(chunk, controller) {
    onBytes(chunk.length);
    controller.enqueue(chunk);
  } }));
}

// All of a stream, refusing more than `limit` bytes (a damaged or wrong file), and giving up
// (through `quiet`, which aborts the request) when nothing arrives for `quietSeconds`.
let quietSeconds = 30;

// How long a download may stay silent before it is given up on (the load's `quietSeconds`).
export function giveUpAfter(seconds) {
  if (Number.isFinite(seconds) && seconds > 0) quietSeconds = seconds;
}

async function collect(stream, limit, url, quiet) {
  const parts = [];
  let length = 0;
  const reader = stream.getReader();
  for (;;) {
    let timer;
    const silence = new Promise((_, reject) => {
      timer = setTimeout(() => {
        const error = new Error(`The server sent nothing of ${nameOf(url)} for ${quietSeconds} s; check the connection, then try again.`);
        error.sentence = true;
        error.quiet = true;
        reject(error); // first: cancelling ends the pending read, which must not win the race
        quiet?.abort();
        reader.cancel().catch(() => {});
      }, quietSeconds * 1000);
    });
    let done, value;
    try {
      ({ done, value } = await Promise.race([reader.read(), silence]));
    } finally {
      clearTimeout(timer);
    }
    if (done) break;
    length += value.length;
    if (length > limit) {
      reader.cancel();
      const error = new Error(`The file ${nameOf(url)} is larger than the site's list says; the site is damaged. Try again, or tell the site's owner.`);
      error.sentence = true;
      throw error;
    }
    parts.push(value);
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
