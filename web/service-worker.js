// The site offline: `llama2np build` places this file at the site's root, so that it controls
// the page and its worker. The page, once ready, sends the addresses its visit loaded ("keep");
// they are stored here, and later requests are answered:
//   - content-hashed folders (web-*, pyodide-*, model-*, models-*): from the store first, since
//     their content never changes under one address; anything new is stored as it arrives. A
//     request made with `cache: "reload"` (the worker's, after a stored file failed its sha256)
//     goes to the network and replaces the stored copy;
//   - everything else (the pages, llama2np.js): from the network first, so that a new version
//     of the site takes effect on the next visit, and from the store when the network is gone.
// Folders of older versions are dropped when a visit keeps a newer one; the models of the site
// that this visit did not load (its picker's other choices) are listed in `folders` and stay.

const STORE = "llama2np-offline";
const HASHED = /\/(web|pyodide|models?)-[0-9a-f]{8,}\//;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(HASHED.test(request.url) ? storeFirst(event) : networkFirst(request));
});

// The answer goes to the page at once; its copy is stored as it arrives (waiting for the store
// first would hold every byte back until the whole file was in).
async function storeFirst(event) {
  const { request } = event;
  const store = await caches.open(STORE);
  const stored = request.cache === "reload" ? null : await store.match(request);
  if (stored) return stored;
  const response = await fetch(request);
  if (response.ok) event.waitUntil(store.put(request, response.clone()).catch(() => {}));
  return response;
}

async function networkFirst(request) {
  try {
    // The page is asked of the host each time (a 304 when unchanged): a host that sends no
    // Cache-Control would otherwise let the browser's cache answer with an older page.
    const response = await fetch(request.mode === "navigate" ? new Request(request.url, { cache: "no-cache" }) : request);
    // The pages and the files beside them (embed.html, llama2np.js) as last seen, for offline.
    if (response.ok && response.type === "basic") {
      const copy = response.clone();
      caches.open(STORE).then((store) => store.put(pageKey(request.url), copy)).catch(() => {});
    }
    return response;
  } catch (error) {
    const stored = await (await caches.open(STORE)).match(pageKey(request.url));
    if (stored) return stored;
    throw error;
  }
}

// A page is stored under its address without query or fragment, and a folder's index.html
// under the folder: both addresses are the one page.
const pageKey = (url) => {
  const u = new URL(url);
  u.search = "";
  u.hash = "";
  u.pathname = u.pathname.replace(/\/index\.html$/, "/");
  return u.href;
};

self.addEventListener("message", (event) => {
  if (event.data?.type !== "keep" || !Array.isArray(event.data.urls)) return;
  const [port] = event.ports;
  event.waitUntil(
    keep(strings(event.data.urls), strings(event.data.folders), strings(event.data.extra)).then(
      (count) => port?.postMessage({ kept: count }),
      (error) => port?.postMessage({ kept: 0, error: String(error?.message ?? error) }),
    ),
  );
});

const strings = (list) => (Array.isArray(list) ? list.filter((item) => typeof item === "string") : []);

// Stores what the visit loaded (`urls`, from the browser's HTTP cache only: a host that forbids
// caching would otherwise send the whole visit a second time; what is not there is stored on the
// next visit, as it passes) and `extra` files the visit did not load (fetched). Returns how many
// it holds, or 0 when some could not be kept.
async function keep(urls, otherFolders = [], extra = []) {
  const store = await caches.open(STORE);
  let missed = 0;
  const ours = (list) => list.map((url) => new URL(url, self.location.href)).filter((url) => url.origin === self.location.origin);
  const wanted = [...ours(urls), ...ours(extra)];
  const fetched = new Set(ours(extra).map((url) => url.href));
  for (const url of wanted) {
    const key = pageKey(url.href);
    if (await store.match(key)) continue;
    const response = await fetch(key, fetched.has(url.href) ? {} : { cache: "only-if-cached", mode: "same-origin" }).catch(() => null);
    if (!response?.ok) {
      missed += 1;
      continue;
    }
    await store.put(key, response);
  }
  const current = [...wanted, ...otherFolders.filter((url) => typeof url === "string").map((url) => new URL(url, self.location.href))];
  const folders = new Set(current.map((url) => url.pathname.match(HASHED)?.[0]).filter(Boolean));
  for (const request of await store.keys()) {
    const folder = new URL(request.url).pathname.match(HASHED)?.[0];
    if (folder && !folders.has(folder) && [...folders].some((f) => f.split("-")[0] === folder.split("-")[0])) {
      await store.delete(request);
    }
  }
  return missed ? 0 : wanted.length;
}
