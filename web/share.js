// A story's settings as a link and as a file header. A link carries them in its fragment (after
// "#"), which browsers never send to the server, so a static host sees no query strings.

const FIELDS = ["prompt", "temperature", "topp", "seed", "steps"];
const PROMPT_LIMIT = 20_000; // characters; far beyond any context, short enough for an address

// The page's address with the story's settings; the seed is the one actually used, so a story
// seeded from the clock is written again the same.
export function shareURL(href, story) {
  const url = new URL(href);
  const params = new URLSearchParams();
  for (const name of FIELDS) params.set(name, String(story[name]));
  if (story.model) params.set("model", story.model); // on a site with several models
  url.hash = params.toString();
  return url.href;
}

// The settings in a fragment, each a string the page's field accepts, or null when the fragment
// holds none. Anything out of range or malformed is left out (the field keeps its own value)
// and named in `ignored`, for the visitor.
const LABELS = { prompt: "start", temperature: "temperature", topp: "top-p", seed: "seed", steps: "length" };

export function decodeShare(hash) {
  if (!hash || hash.length < 2) return null;
  let params;
  try {
    params = new URLSearchParams(hash.slice(1));
  } catch {
    return null;
  }
  const ignored = []; // settings the link carries that the page cannot use: the visitor is told
  const number = (name, low, high, whole) => {
    const text = params.get(name);
    if (text === null) return undefined;
    const value = Number(text);
    const usable = /^\d+(\.\d+)?$/.test(text) && value >= low && value <= high && (!whole || Number.isInteger(value));
    if (!usable) ignored.push(LABELS[name]);
    return usable ? text : undefined;
  };
  const prompt = params.get("prompt");
  const promptFits = prompt !== null && prompt.length <= PROMPT_LIMIT;
  if (prompt !== null && !promptFits) ignored.push(LABELS.prompt);
  const values = {
    prompt: promptFits ? prompt : undefined,
    temperature: number("temperature", 0, 2, false),
    topp: number("topp", 0, 1, false),
    seed: number("seed", 0, Number.MAX_SAFE_INTEGER, true),
    steps: number("steps", 0, 1 << 20, true),
    model: params.has("model") && params.get("model").length <= 200 ? params.get("model") : undefined,
  };
  return Object.values(values).some((v) => v !== undefined) || ignored.length ? { ...values, ignored } : null;
}

// What the page says once a share link's settings are filled in.
export function sharedNote(shared) {
  const many = shared.ignored.length > 1;
  const kept = shared.ignored.length
    ? ` The link's ${new Intl.ListFormat("en").format(shared.ignored)} ${many ? "are" : "is"} out of range, so ${many ? "those fields keep their values" : "that field keeps its value"}.`
    : "";
  return `The settings of a shared story are filled in: press Generate to write it again.${kept}`;
}

// The story as a .txt: a header of "# " lines with the settings and the link (none for a
// visitor's own model, which a link cannot carry), then the text.
export function storyFile(story, text, modelName, url) {
  const header = [
    "# A story written by llama2np",
    `# model: ${modelName}`,
    `# prompt: ${JSON.stringify(story.prompt)}`,
    `# temperature: ${story.temperature}, top-p: ${story.topp}, seed: ${story.seed}, length: ${story.steps}`,
    ...(url ? [`# link: ${url}`] : []),
  ];
  return { name: `llama2np-story-seed-${story.seed}.txt`, text: `${header.join("\n")}\n\n${text}\n` };
}
