// llama2np for any page of this site's origin: a tiny Llama writes stories in the visitor's
// browser. See docs/embed.md.
//
//   <script type="module" src="/demo/llama2np.js"></script>
//   <llama2np-story prompt="Once upon a time" temperature="0.8"></llama2np-story>
//
//   import { load } from "/demo/llama2np.js";
//   const writer = await load({ onProgress: (fraction, label) => … });
//   for await (const { text } of writer.generate("Once upon a time", { signal })) …

import { defineStoryElement } from "./web/story-element.js";
import { DEFAULTS, Story, StoryWriter } from "./web/story-writer.js";

export { DEFAULTS, Story, StoryWriter };

// Where this site keeps Pyodide and its default model; `llama2np build` points these at the
// content-hashed folders it writes.
const PYODIDE = new URL("pyodide/", import.meta.url).href;
const MODEL = new URL("model/manifest.json", import.meta.url).href;

// A StoryWriter with its model loaded: the site's default, or `model` (the address of another
// model's manifest.json on this site). Every caller asking for the same model gets the same
// writer (one worker, one Python; its stories are written one after another), so do not close
// it while others may use it. With `files` ([File, File]: a llama2.c checkpoint and its
// tokenizer) the writer is the caller's own. `onProgress(fraction, label)` follows the load;
// `onFailure(sentence)` hears when the writer stops for good after it; `quietSeconds` is how
// long a download may stay silent before the load gives up (30).
export function load({ model = MODEL, files = null, onProgress, onFailure, quietSeconds } = {}) {
  const address = new URL(model, document.baseURI).href;
  if (files) return StoryWriter.load({ pyodide: PYODIDE, model: address, files, onProgress, onFailure, quietSeconds });
  let entry = shared.get(address);
  if (entry?.instance?.failed) entry = null; // closed, or stopped for good: start another
  if (!entry) {
    const listeners = { progress: new Set(), failure: new Set() };
    const writer = StoryWriter.load({
      pyodide: PYODIDE,
      model: address,
      quietSeconds,
      onProgress: (fraction, label) => listeners.progress.forEach((listener) => listener(fraction, label)),
      onFailure: (sentence) => {
        shared.delete(address); // the next caller starts another
        listeners.failure.forEach((listener) => listener(sentence));
      },
    });
    entry = { writer, listeners, instance: null };
    const made = entry;
    writer.then((instance) => { made.instance = instance; }, () => shared.get(address) === made && shared.delete(address));
    shared.set(address, entry);
  }
  if (onProgress) {
    entry.listeners.progress.add(onProgress);
    entry.writer.finally(() => entry.listeners.progress.delete(onProgress)).catch(() => {});
  }
  if (onFailure) entry.listeners.failure.add(onFailure);
  return entry.writer;
}

const shared = new Map(); // a model's address -> {writer: Promise<StoryWriter>, listeners, instance}

defineStoryElement(load);
