// One bar for the whole load. The worker lists every file's size on the wire as soon as it
// starts ("listed" once all are) and reports the bytes as they arrive, so the bar counts what
// actually travels and the label can say how much is left and, once the rate is known, how long. The stages after the
// downloads (starting Python, installing packages, reading the model) take the last stretch.
// The bar never goes back.

import { megabytes } from "./models.js";

const DOWNLOAD_SHARE = 0.85; // of the bar; the rest is the stages after the downloads
const STAGES = { start: 0.88, install: 0.93, model: 0.97 };
const RATE_AFTER_MS = 1000; // an estimate needs this much of the download behind it

// `show(fraction, label)` draws the bar; `cached`: this browser loaded this site before, so its
// files come from its own cache rather than the network.
// `next` names what follows the downloads.
export function loadMeter(show, cached = false, next = "Starting Python") {
  const files = new Map(); // url -> {wire, done}
  let shown = 0;
  let firstBytes = 0; // when the first bytes came, for the rate
  const download = cached ? "Loading from this browser's cache" : "Downloading";
  let stage = { key: "download", label: download };
  let listed = false; // every file of the load is in `files`: the total is known
  const render = () => {
    let wire = 0;
    let done = 0;
    for (const f of files.values()) {
      wire += f.wire;
      done += f.done;
    }
    const downloading = !listed || done < wire; // Python may start before the last file is in
    const floor = downloading ? 0 : STAGES[stage.key] ?? 0;
    shown = Math.max(shown, listed && wire ? DOWNLOAD_SHARE * (done / wire) : 0, floor);
    let label = downloading ? download : stage.key === "download" ? next : stage.label;
    if (downloading && listed) {
      label += ` ${megabytes(done)} of ${megabytes(wire)} MB`;
      const elapsed = performance.now() - firstBytes;
      if (firstBytes && elapsed > RATE_AFTER_MS && done > 0) {
        const seconds = Math.ceil(((wire - done) / done) * (elapsed / 1000));
        label += seconds > 1 ? `, about ${seconds} s left` : ", almost done";
      }
    }
    show(shown, `${label}…`);
  };
  render();
  return {
    // {stage: "file", url, wire, done}, {stage: "listed"} once every file is,
    // or {stage: "start" | "install" | "model", label}
    update(message) {
      if (message.stage === "listed") {
        listed = true;
      } else if (message.stage === "file") {
        if (!firstBytes && message.done > 0) firstBytes = performance.now();
        files.set(message.url, { wire: message.wire, done: message.done });
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
