// Offline once visited: the service worker (at the site's root, web/service-worker.js) keeps
// what this visit loaded, so that the next visit works without a network.

// Registers the service worker and asks it to keep the page's own requests, the worker's
// (`resources`) and `extra` addresses (files a visitor may ask for later, such as the source
// zip); `folders` are the site's other model folders, whose files stay kept if they were.
// `onKept()` runs once everything is kept.
export async function keepOffline({ resources = [], extra = [], folders = [], onKept }) {
  if (!("serviceWorker" in navigator)) return;
  try {
    const registration = await navigator.serviceWorker.register(new URL("service-worker.js", document.baseURI), { scope: "./" });
    const active = registration.active ?? (await navigator.serviceWorker.ready).active;
    const page = performance.getEntriesByType("resource").map((entry) => entry.name);
    const urls = [new URL(".", document.baseURI).href, ...page, ...resources].filter((url) => url.startsWith(location.origin));
    const kept = new MessageChannel();
    kept.port1.onmessage = ({ data }) => {
      if (data?.kept) onKept();
    };
    active.postMessage({ type: "keep", urls: [...new Set(urls)], extra, folders }, [kept.port2]);
  } catch (error) {
    console.warn(`This page will not work offline: ${error?.message ?? error}`);
  }
}
