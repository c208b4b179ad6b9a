// One bar for the whole load. The worker reports each file's bytes as they arrive and, once its
// response is in, how many bytes it takes on the wire (Content-Length of a compressed response);
// the bar counts wire bytes, so it ends at what actually travelled. The stages after the
// downloads (starting Python, installing packages, reading the model) take the last stretch.
// The bar never goes back: a file whose size becomes known later only slows it down. The label
// gives a total only once every file's wire size is known (before, it would be a guess from
// the files' unpacked sizes, several times too large).

import { megabytes } from "./models.js";

const DOWNLOAD_SHARE = 0.85; // of the bar; the rest is the stages after the downloads
const STAGES = { start: 0.88, install: 0.93, model: 0.97 };

export function loadMeter(show) {
  const files = new Map(); // url -> {wire, done, bytes}
  let shown = 0;
  let stage = { key: "download", label: "Downloading" };
  const render = () => {
    let wire = 0;
    let wireDone = 0;
    let known = true;
    for (const f of files.values()) {
      if (!f.wire) known = false;
      wire += f.wire || f.bytes;
      wireDone += (f.wire || f.bytes) * (f.bytes ? f.done / f.bytes : 1);
    }
    const downloaded = wire ? wireDone / wire : 0;
    const floor = STAGES[stage.key] ?? 0;
    shown = Math.max(shown, Math.min(DOWNLOAD_SHARE * downloaded, DOWNLOAD_SHARE), floor);
    const counted = known ? `${megabytes(wireDone)} of ${megabytes(wire)} MB` : `${megabytes(wireDone)} MB so far`;
    const bytes = files.size && wireDone < wire ? ` (${counted})` : "";
    show(shown, `${stage.label}${bytes}…`);
  };
  return {
    // {stage: "file", url, bytes, done, wire} or {stage: "start" | "install" | "model", label}
    update(message) {
      if (message.stage === "file") {
        files.set(message.url, { bytes: message.bytes, done: message.done, wire: message.wire });
      } else {
        stage = { key: message.stage, label: message.label };
      }
      render();
    },
    finish() {
      shown = 1;
      show(1, "Ready");
    },
  };
}

