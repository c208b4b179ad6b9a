// "Why this word": with the toggle on, each token the model writes is a span coloured by the
// probability the sampler gave it (data-p); hovering, focusing or tapping one shows, in a box
// beside it, that probability and the five likeliest tokens at that step. The story is one stop
// for the Tab key; the arrow keys then move from token to token.

const BANDS = 5; // colours from unlikely (0) to likely (4)

// A token as a span: {text, p, top: [{text, p}, ...]} from the worker (Session.explanations).
export function tokenSpan({ text, p, top }) {
  const span = document.createElement("span");
  span.className = "token";
  span.textContent = text;
  span.dataset.p = String(p);
  span.dataset.band = String(Math.min(BANDS - 1, Math.floor(p * BANDS)));
  span.dataset.top = JSON.stringify(top.map((t) => [t.text, t.p]));
  span.tabIndex = -1; // the story's one Tab stop is its first token; see explainer()
  return span;
}

// A probability as the box shows it: never "100%" beside alternatives that have some of it.
function percent(p) {
  if (p >= 1) return "100%";
  if (p > 0.999) return ">99.9%";
  return p >= 0.001 ? `${(p * 100).toFixed(1)}%` : "<0.1%";
}

const shownPiece = (text) => JSON.stringify(text);

// Wires the story `output` and the `box` (#why) together; `active()` says whether the view is
// on for the story shown. Returns {hide, reset}: reset() makes the first token the Tab stop.
export function explainer(output, box, active) {
  let chosen = null;

  function show(span) {
    if (!span?.dataset.p || !active()) return;
    const alternatives = JSON.parse(span.dataset.top).map(([text, p]) => `${shownPiece(text)} ${percent(p)}`).join(", ");
    box.textContent = `${shownPiece(span.textContent)}: ${percent(Number(span.dataset.p))}. Likeliest at this point: ${alternatives}.`;
    box.hidden = false;
    place(span);
    chosen?.classList.remove("chosen");
    chosen = span;
    span.classList.add("chosen");
  }

  // Under the token, or over it when the space below is taken by the screen's edge or a bar
  // pinned to it; never wider than the story.
  function place(span) {
    const story = box.offsetParent ?? output;
    const frame = story.getBoundingClientRect();
    const word = span.getClientRects()[0] ?? span.getBoundingClientRect();
    const width = Math.min(box.offsetWidth, frame.width);
    const left = Math.min(Math.max(0, word.left - frame.left), frame.width - width);
    const pinned = document.querySelector(".actions-bar");
    const floor = pinned && getComputedStyle(pinned).position === "fixed" ? pinned.getBoundingClientRect().top : innerHeight;
    const below = word.bottom + 6 + box.offsetHeight <= floor;
    box.style.left = `${left}px`;
    box.style.top = `${(below ? word.bottom + 6 : word.top - 6 - box.offsetHeight) - frame.top}px`;
  }

  function hide() {
    box.hidden = true;
    chosen?.classList.remove("chosen");
    chosen = null;
  }

  // Left and right (and Home, End) move among the tokens; the one focused is the Tab stop.
  function move(event) {
    const span = event.target.closest?.(".token");
    if (!span) return;
    const tokens = [...output.querySelectorAll(".token")];
    const steps = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    let index = tokens.indexOf(span);
    if (event.key in steps) index += steps[event.key];
    else if (event.key === "Home") index = 0;
    else if (event.key === "End") index = tokens.length - 1;
    else if (event.key === "Escape") return hide();
    else return;
    event.preventDefault();
    const next = tokens[Math.max(0, Math.min(tokens.length - 1, index))];
    span.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  }

  for (const type of ["mouseover", "focusin", "click"]) {
    output.addEventListener(type, (event) => show(event.target.closest?.(".token")));
  }
  output.addEventListener("keydown", move);
  output.addEventListener("mouseleave", () => {
    if (!output.contains(document.activeElement)) hide();
  });
  output.addEventListener("focusout", (event) => {
    if (!output.contains(event.relatedTarget)) hide();
  });
  // A finger that scrolls the page, or touches anything else, is done with the word it tapped:
  // the box would cover the story. (Safari moves no focus to a tapped button, so focusout alone
  // would miss a tap on Share.)
  window.addEventListener("touchmove", () => box.hidden || hide(), { passive: true });
  document.addEventListener("pointerdown", (event) => {
    if (!box.hidden && !output.contains(event.target) && !box.contains(event.target)) hide();
  });

  return {
    hide,
    // The first token written becomes the story's Tab stop.
    reset() {
      hide();
      const first = output.querySelector(".token");
      if (first) first.tabIndex = 0;
    },
  };
}
