// The story's settings: read from the fields and checked for a request, kept over a reload of
// the tab, and filled in from a shared link (web/share.js). The fields' ids are the settings'
// names.

import { decodeShare } from "./share.js";

export const SETTINGS = ["prompt", "temperature", "topp", "seed", "steps"];
const SETTINGS_KEY = "llama2np-settings"; // what the visitor typed survives a reload of the tab

const field = (name) => document.getElementById(name);

// The request's settings, or an Error with a sentence in the page's words. `maxSteps` is the
// model's context.
export function readSettings(maxSteps) {
  const steps = Number(field("steps").value);
  const seed = Number(field("seed").value);
  if (field("steps").value.trim() === "" || !Number.isInteger(steps) || steps < 0 || steps > maxSteps) {
    throw new Error(`Length must be a whole number from 0 (the whole context) to ${maxSteps}.`);
  }
  if (field("seed").value.trim() === "" || !Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw new Error(`Seed must be a whole number from 0 (from the clock) to ${Number.MAX_SAFE_INTEGER}.`);
  }
  return {
    prompt: field("prompt").value,
    temperature: Number(field("temperature").value),
    topp: Number(field("topp").value),
    seed,
    steps,
  };
}

export function saveSettings() {
  const values = Object.fromEntries(SETTINGS.map((name) => [name, field(name).value]));
  try {
    sessionStorage.setItem(SETTINGS_KEY, JSON.stringify(values));
  } catch {
    // storage may be disabled; the settings then last as long as the page
  }
}

// Fills the fields from the tab's saved settings, or from a shared link's (which come first:
// that is what the visitor came to see). Returns the link's settings, or null.
export function restoreSettings(hash) {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(SETTINGS_KEY) ?? "{}") ?? {};
  } catch {
    // nothing saved, or storage disabled
  }
  const shared = decodeShare(hash);
  for (const name of SETTINGS) {
    const value = shared?.[name] ?? saved[name];
    if (typeof value === "string") field(name).value = value;
  }
  return shared;
}

// localStorage, which may be disabled or full; then nothing is remembered.
export function remembered(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // nothing is remembered; the next visit does what a first visit does
  }
}
