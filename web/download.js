// Downloads with byte counts and failures phrased for people, shared by the worker's stages.

const nameOf = (url) => decodeURIComponent(new URL(url).pathname.split("/").pop() || String(url));

async function request(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new Error(`Could not reach the server for ${nameOf(url)}; check the connection, then press Retry.`);
  }
  if (!response.ok) {
    throw new Error(`Could not download ${nameOf(url)} (HTTP ${response.status}); the site may be incomplete. Press Retry, or tell the site's owner.`);
  }
  return response;
}

export async function fetchJSON(url) {
  const response = await request(url);
  try {
    return await response.json();
  } catch {
    throw new Error(`The file ${nameOf(url)} is not valid JSON; the site is damaged. Press Retry, or tell the site's owner.`);
  }
}

// The body as bytes, calling onBytes(n) as chunks arrive; checks the expected size. `onWire`
// learns how many bytes the response takes on the wire (its Content-Length, compressed), or 0.
// `init` is fetch's (`{cache: "reload"}` passes by every stored copy).
export async function download(url, expectedBytes, onBytes, onWire = () => {}, init = undefined) {
  const response = await request(url, init);
  onWire(Number(response.headers.get("Content-Length")) || 0);
  const bytes = new Uint8Array(expectedBytes);
  let received = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (received + value.length > expectedBytes) {
      reader.cancel();
      throw new Error(`The file ${nameOf(url)} is larger than the site's manifest says; the site is damaged. Press Retry, or tell the site's owner.`);
    }
    bytes.set(value, received);
    received += value.length;
    onBytes(value.length);
  }
  if (received !== expectedBytes) {
    throw new Error(`The file ${nameOf(url)} arrived incomplete (${received} of ${expectedBytes} bytes); press Retry.`);
  }
  return bytes;
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
