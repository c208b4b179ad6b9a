// <llama2np-story prompt="Once upon a time" temperature="0.8">: a story written where the
// element is placed. Its attributes are the page's settings (prompt, temperature, topp, seed,
// steps); `model` names another of the site's models (its manifest.json). The host page styles
// it through CSS custom properties (docs/embed.md) and ::part(story), can follow its
// data-state (loading, writing, done, error, or stopped when taken out of the page), and hears `done` (detail: how the story ended and
// its statistics) and `error` (detail: a sentence).
//
// Every element on a page writes with the writer `load` shares per model (llama2np.js): one
// worker, one Python; their stories are written one after another.

import { settleDirection } from "./direction.js";

const SETTINGS = ["prompt", "temperature", "topp", "seed", "steps"];

const STYLE = `
  :host { display: block; font: var(--llama2np-font, inherit); color: var(--llama2np-color, inherit);
          background: var(--llama2np-background, transparent); padding: var(--llama2np-padding, 0);
          border-radius: var(--llama2np-radius, 0); }
  :host([hidden]) { display: none; }
  .story { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; unicode-bidi: isolate; }
  .prompt { font-weight: var(--llama2np-prompt-weight, bold); color: var(--llama2np-prompt-color, inherit); }
  .prompt, .continuation { unicode-bidi: isolate; }
  .status { margin: 0; font-size: 0.85em; opacity: 0.75; }
  .status:empty, progress[hidden] { display: none; }
  progress { width: 100%; accent-color: var(--llama2np-accent, auto); }
`;

// Defines the element with `load(options)`, which gives a StoryWriter (llama2np.js's `load`).
export function defineStoryElement(load, name = "llama2np-story") {
  if (customElements.get(name)) return;
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(STYLE);

  class StoryElement extends HTMLElement {
    static observedAttributes = [...SETTINGS, "model"];
    #abort = null;
    #scheduled = false;
    #parts;

    constructor() {
      super();
      const root = this.attachShadow({ mode: "open" });
      root.adoptedStyleSheets = [sheet]; // one sheet for every element on the page
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      const status = document.createElement("p");
      status.className = "status";
      status.setAttribute("role", "status");
      const story = document.createElement("p");
      story.className = "story";
      story.part = "story";
      story.dir = "auto";
      story.setAttribute("aria-live", "polite");
      root.append(bar, status, story);
      this.#parts = { bar, status, story };
    }

    connectedCallback() {
      this.#schedule();
    }

    disconnectedCallback() {
      this.#abort?.abort();
    }

    attributeChangedCallback() {
      if (this.isConnected) this.#schedule();
    }

    // Writes the story again (a seed of 0, the default, gives another each time).
    write() {
      this.#schedule();
    }

    // Attribute changes in one turn (the parser sets them one by one) make one story.
    #schedule() {
      if (this.#scheduled) return;
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        if (this.isConnected) this.#write();
      });
    }

    async #write() {
      this.#abort?.abort();
      const abort = (this.#abort = new AbortController());
      const { bar, status, story } = this.#parts;
      const model = this.getAttribute("model");
      const show = (fraction, label) => {
        if (this.#abort !== abort) return;
        bar.value = fraction;
        status.textContent = label;
      };
      const writer = load({ ...(model ? { model } : {}), onProgress: show });
      this.dataset.state = "loading";
      let done;
      try {
        const ready = await writer;
        if (abort.signal.aborted) return;
        this.dataset.state = "writing";
        bar.hidden = true;
        status.textContent = "";
        const settings = {};
        for (const name of SETTINGS.slice(1).filter((setting) => this.hasAttribute(setting))) {
          const text = this.getAttribute(name);
          settings[name] = Number(text);
          if (!text.trim() || !Number.isFinite(settings[name])) {
            throw new Error(`The ${name} attribute "${text.slice(0, 40)}" is not a number.`);
          }
        }
        const run = ready.generate(this.getAttribute("prompt") ?? "", { ...settings, signal: abort.signal });
        const begun = await run.started;
        if (abort.signal.aborted) return;
        const prompt = document.createElement("span");
        prompt.className = "prompt";
        prompt.part = "prompt";
        prompt.dir = "auto";
        prompt.textContent = begun.promptText ?? "";
        const continuation = document.createElement("span");
        continuation.className = "continuation";
        continuation.dir = "auto";
        story.replaceChildren(prompt, continuation);
        for await (const { text } of run) {
          continuation.append(text);
          settleDirection(continuation);
        }
        done = await run.finished;
      } catch (error) {
        if (abort.signal.aborted) return;
        bar.hidden = true;
        status.textContent = error.message;
        this.dataset.state = "error";
        this.dispatchEvent(new CustomEvent("error", { detail: error.message }));
        return;
      }
      if (abort.signal.aborted) return;
      this.dataset.state = "done";
      this.dispatchEvent(new CustomEvent("done", { detail: done }));
    }
  }

  customElements.define(name, StoryElement);
}
