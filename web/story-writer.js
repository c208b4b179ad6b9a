// A story writer for any page: the model runs in a worker (web/worker.js), and this module turns
// the messages of web/protocol.js into promises and async iterators. The page (web/app.js), the
// custom element (web/story-element.js) and other sites' pages (llama2np.js, docs/embed.md) all
// write through it.
//
//   const writer = await StoryWriter.load({ pyodide, model, onProgress });
//   for await (const { text } of writer.generate("Once upon a time", { temperature: 0.8 })) …
//
// One writer is one worker and one Python. Its stories are written one at a time, in the order
// they were asked for; a story asked for while another is written waits its turn.

import { loadMeter } from "./progress.js";
import { IN, OUT } from "./protocol.js";

const RUNTIME_KEY = "llama2np-runtime"; // the runtime folder this browser downloaded whole before

// The settings a story is written with when the caller names none: run.c's.
export const DEFAULTS = Object.freeze({ temperature: 1, topp: 0.9, seed: 0, steps: 256 });

export class StoryWriter {
  #worker;
  #nextId = 0;
  #waiting = new Map(); // id -> the story or request its messages go to
  #loading = null; // {resolve, reject, meter} while a model loads
  #turn = Promise.resolve(); // settles when the story before the next one has ended
  #failure = null; // the sentence that stopped this writer, once one has
  #onFailure;

  // `info`: the model, {name, config, parameters, bytes, manifest, own?}
  info = null;
  // How the last load went: {seconds, stages, fromSnapshot, resources}
  loaded = null;

  // Starts a worker and loads a model into it; `ready` settles with the model's info.
  // `pyodide`: the site's Pyodide folder; `model`: the manifest of the site's model to load;
  // `files`: a visitor's own checkpoint and tokenizer (File objects), read after it;
  // `onProgress(fraction, label)`: the load bar; `onFailure(sentence)`: the worker stopped for
  // good after the load (a failed load rejects `ready` instead); `quietSeconds`: how long a
  // download may stay silent before it is given up on (30).
  constructor({ pyodide, model, files = null, onProgress = () => {}, onFailure = () => {}, quietSeconds }) {
    this.#onFailure = onFailure;
    this.#worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    this.#worker.onmessage = ({ data }) => this.#receive(data);
    this.#worker.onerror = (event) => {
      event.preventDefault();
      workerFailure(event).then((sentence) => this.#fail(sentence));
    };
    const cached = remembered(RUNTIME_KEY) === pyodide;
    this.ready = this.#load({ type: IN.LOAD, pyodideURL: pyodide, modelURL: model, quietSeconds }, loadMeter(onProgress, cached))
      .then(() => remember(RUNTIME_KEY, pyodide))
      .then(() => (files ? this.open(files) : this.info));
    this.ready.catch(() => {}); // the caller may await it later, or never
  }

  // A writer whose model is loaded (the options are the constructor's).
  static async load(options) {
    const writer = new StoryWriter(options);
    await writer.ready;
    return writer;
  }

  // Another of the site's models (its manifest's address), read into the same Python. When it
  // cannot be downloaded the model before stays loaded and this rejects; when it fails once
  // downloaded, the writer has no model left and fails.
  use(model, onProgress = () => {}) {
    return this.#load({ type: IN.MODEL, modelURL: model }, loadMeter(onProgress, false, "Reading the model"));
  }

  // A visitor's own checkpoint and tokenizer (two File objects, in either order), read in the
  // worker; the model before stays loaded when they are refused (the promise rejects).
  open(files) {
    return this.#request({ type: IN.OPEN, files }).then((info) => (this.info = { ...info, own: true }));
  }

  // Writes a story from `prompt`: an async iterator of pieces {text, tokens?}. `tokens` (with
  // `probabilities: true`) are the new tokens, each {text, p, top: [{text, p}, …]}: the
  // probability the sampler gave it and the likeliest alternatives. `signal` (an AbortSignal)
  // stops it; what was written until then is kept.
  generate(prompt = "", { temperature, topp, seed, steps, probabilities = false, signal } = {}) {
    const settings = { ...DEFAULTS, ...defined({ temperature, topp, seed, steps }) };
    const wrong = settingProblem(prompt, settings);
    return this.#story({ type: IN.GENERATE, prompt, ...settings, explain: Boolean(probabilities) }, signal, wrong);
  }

  // Goes on with the last story this writer wrote (stopped, or cut off by its Length) up to the
  // whole context: the same tokens a longer Length would have written.
  continue({ signal } = {}) {
    return this.#story({ type: IN.CONTINUE }, signal);
  }

  // The probabilities of the last story this writer wrote, worked out afterwards (one batched
  // pass): its tokens, each {text, p, top}, as `probabilities: true` would have given them.
  explain() {
    return this.#turn.then(() => this.#request({ type: IN.EXPLAIN }));
  }

  // Times the engines on this model: results as `llama2np bench` prints them.
  bench(options = {}) {
    return this.#request({ type: IN.BENCH, ...options });
  }

  close() {
    this.#fail("The story writer was closed.", false);
  }

  // --- the messages ---

  // A story that waits for the one before to end, then asks the worker; `wrong`: a sentence
  // saying why it cannot be written at all.
  #story(message, signal, wrong = null) {
    const story = new Story(() => this.#send({ type: IN.STOP, id: story.id }));
    const before = this.#turn;
    this.#turn = story.finished.catch(() => {});
    if (signal?.aborted) story.stop();
    signal?.addEventListener?.("abort", () => story.stop(), { once: true });
    before.then(() => {
      if (wrong) return story.fail(wrong);
      if (story.stopping && !story.id) return story.end({ stopped: true, ended: null, canContinue: false, stats: null });
      if (this.#failure) return story.fail(this.#failure);
      story.id = ++this.#nextId;
      this.#waiting.set(story.id, story);
      try {
        this.#send({ ...message, id: story.id });
      } catch (error) { // nothing the worker could take: the queue must not stop here
        this.#waiting.delete(story.id);
        story.fail(`The story could not be sent to the model (${error?.message ?? error}).`);
      }
    });
    return story;
  }

  #request(message) {
    if (this.#failure) return Promise.reject(new Error(this.#failure));
    return new Promise((resolve, reject) => {
      const id = ++this.#nextId;
      this.#waiting.set(id, { resolve, reject });
      this.#send({ ...message, id });
    });
  }

  #load(message, meter) {
    if (this.#failure) return Promise.reject(new Error(this.#failure));
    return new Promise((resolve, reject) => {
      this.#loading = { resolve, reject, meter };
      this.#send(message);
    });
  }

  #send(message) {
    if (!this.#failure) this.#worker.postMessage(message);
  }

  #receive(message) {
    const to = this.#waiting.get(message.id);
    switch (message.type) {
      case OUT.PROGRESS:
        return this.#loading?.meter.update(message);
      case OUT.READY: {
        const { model, ...loaded } = message;
        this.info = model;
        this.loaded = loaded;
        this.#loading?.meter.finish();
        this.#loading?.resolve(model);
        this.#loading = null;
        return;
      }
      case OUT.START:
      case OUT.CONTINUED:
        return to?.begin(message);
      case OUT.TOKENS:
        return to?.push({ text: message.text, ...(message.pieces ? { tokens: message.pieces } : {}) });
      case OUT.DONE: {
        this.#waiting.delete(message.id);
        const { stopped, ended, canContinue, stats } = message;
        return to?.end({ stopped, ended: ended ?? null, canContinue, stats });
      }
      case OUT.OPENED:
        this.#waiting.delete(message.id);
        this.loaded = { seconds: message.seconds, heap: message.heap };
        return to?.resolve(message.model);
      case OUT.OPEN_FAILED:
        this.#waiting.delete(message.id);
        return to?.reject(new Error(message.message));
      case OUT.EXPLAINED:
      case OUT.BENCH_RESULT:
        this.#waiting.delete(message.id);
        return to?.resolve(message.tokens ?? message.results);
      case OUT.ERROR:
        if (message.fatal) return this.#fail(message.message);
        if (to) {
          this.#waiting.delete(message.id);
          return to instanceof Story ? to.fail(message.message) : to.reject(new Error(message.message));
        }
        if (this.#loading) { // another model could not be downloaded: the one before stays
          this.#loading.reject(new Error(message.message));
          this.#loading = null;
        }
    }
  }

  // The worker stopped for good: everything waiting is told why, once.
  // Why this writer stopped for good, or null while it works.
  get failed() {
    return this.#failure;
  }

  #fail(sentence, report = true) {
    if (this.#failure) return;
    this.#failure = sentence;
    this.#worker.terminate(); // a failed load must not keep a Python in memory
    if (this.#loading) report = false; // the load's promise says it
    this.#loading?.reject(new Error(sentence));
    this.#loading = null;
    for (const to of this.#waiting.values()) to instanceof Story ? to.fail(sentence) : to.reject(new Error(sentence));
    this.#waiting.clear();
    if (report && this.info) this.#onFailure(sentence);
  }
}

// One story being written: an async iterator of pieces, with two promises beside it.
//   started: {promptText, seed, steps} as the model read them (or {steps, takenBack} when
//            it continues a story: the characters of a cut character taken back, if any)
//   finished: {stopped, ended: "end" | "length" | null, canContinue, stats}
// Both reject, and so does the iteration, with an Error whose message is a sentence for people.
export class Story {
  id = 0; // the worker's, once the story's turn came
  stopping = false;
  #pieces = []; // written, not yet taken by the iterator
  #wake = null;
  #over = false;
  #error = null;
  #stop;
  #settle; // {begin, fail, end}

  constructor(stop) {
    this.#stop = stop;
    let begin, failStart, end, failEnd;
    this.started = new Promise((resolve, reject) => { begin = resolve; failStart = reject; });
    this.finished = new Promise((resolve, reject) => { end = resolve; failEnd = reject; });
    this.started.catch(() => {}); // a caller may watch only one of them
    this.finished.catch(() => {});
    this.#settle = { begin, failStart, end, failEnd };
  }

  stop() {
    if (this.stopping || this.#over) return;
    this.stopping = true;
    if (this.id) this.#stop();
  }

  // --- for the writer ---

  begin(message) {
    this.#settle.begin(message);
  }

  push(piece) {
    this.#pieces.push(piece);
    this.#wakeUp();
  }

  end(result) {
    this.#over = true;
    this.#settle.begin({}); // a story stopped before its turn came
    this.#settle.end(result);
    this.#wakeUp();
  }

  fail(sentence) {
    this.#over = true;
    this.#error = new Error(sentence);
    this.#settle.failStart(this.#error);
    this.#settle.failEnd(this.#error);
    this.#wakeUp();
  }

  #wakeUp() {
    this.#wake?.();
    this.#wake = null;
  }

  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        if (this.#pieces.length) yield this.#pieces.shift();
        else if (this.#error) throw this.#error;
        else if (this.#over) return;
        else await new Promise((resolve) => (this.#wake = resolve));
      }
    } finally {
      if (!this.#over) this.stop(); // the caller left the loop early: the story stops
    }
  }
}

// Why these settings cannot make a story, in a sentence, or null: the worker takes only a text
// and numbers in range.
function settingProblem(prompt, { temperature, topp, seed, steps }) {
  if (typeof prompt !== "string") return `The start of the story must be text, not ${typeof prompt}.`;
  const number = (value, name, low, high, whole, advice) =>
    typeof value === "number" && Number.isFinite(value) && value >= low && value <= high && (!whole || Number.isInteger(value))
      ? null
      : `${name} ${String(value).slice(0, 40)} is out of range; ${advice}`;
  return (
    number(temperature, "Temperature", 0, 1e6, false, "use a number of 0 or more (0 is greedy).") ??
    number(topp, "Top-p", 0, 1, false, "use a number from 0 to 1.") ??
    number(seed, "Seed", 0, Number.MAX_SAFE_INTEGER, true, "use a whole number of 0 or more (0 takes one from the clock).") ??
    number(steps, "Length", 0, 1e9, true, "use a whole number of 0 or more (0 is the whole context).")
  );
}

const defined = (settings) => Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined));

// Why the worker could not run, in a sentence: a module script is run only when the host sends
// it as JavaScript, which is a setting of the host's.
async function workerFailure(event) {
  const generic = `The model's worker stopped (${event.message || "it could not start"}). Try again.`;
  try {
    const response = await fetch(new URL("./worker.js", import.meta.url), { method: "HEAD" });
    const type = response.headers.get("Content-Type") ?? "no type";
    if (response.ok && !/javascript|ecmascript/i.test(type)) {
      return `The host sends the page's scripts (.js files) as "${type}", which browsers do not run; set the type of .js files to text/javascript on the host.`;
    }
  } catch {
    // unreachable: the generic sentence says what can be said
  }
  return generic;
}

// localStorage, which may be disabled or full; then nothing is remembered.
function remembered(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // nothing is remembered; the next visit does what a first visit does
  }
}
