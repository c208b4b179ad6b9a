// Which way a piece of text runs, from its first letter: the story's continuation gets its own
// direction once its first letter is written, so that a start written right to left (or ending
// in a direction override) leaves it as it is. (dir="auto" would do this, but is not worked out
// again as text streams in, so a story starting with "." would keep the direction of its start.)

const RIGHT_TO_LEFT = /[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]|[\u{10800}-\u{10fff}\u{1e800}-\u{1efff}]/u;
const LETTER = /\p{L}/u;

// "rtl", "ltr", or null while `text` has no letter.
export function direction(text) {
  const first = text.match(LETTER)?.[0] ?? text.match(RIGHT_TO_LEFT)?.[0];
  if (!first) return null;
  return RIGHT_TO_LEFT.test(first) ? "rtl" : "ltr";
}

// Sets `element`'s dir from its text once it has a letter; until then it stays "auto".
export function settleDirection(element) {
  if (element.dir !== "auto") return;
  const found = direction(element.textContent);
  if (found) element.dir = found;
}
