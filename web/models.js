// The site's models (`llama2np build --model ...`) and the picker that chooses among them: a
// <select id="model-select"> under the model's line, present only when the site has several.
// The list is models.json in a content-hashed folder (the page's <meta name="llama2np-models">);
// each entry names the model, its parameters, its download size and its manifest.

import { fetchJSON } from "./download.js";

const NAME_LIMIT = 200; // characters of a name shown in the picker or carried by a share link

// The site's models, the default first, each {name, parameters, bytes, manifestURL}; [] when
// the page names no list (a page served from the sources) or the list is unusable, so the
// page goes on with its default model alone.
export async function siteModels(listURL, base) {
  let list;
  try {
    list = await fetchJSON(listURL);
  } catch {
    return [];
  }
  if (!Array.isArray(list?.models)) return [];
  const models = [];
  for (const entry of list.models) {
    if (typeof entry?.name !== "string" || typeof entry.manifest !== "string") continue;
    let manifestURL;
    try {
      manifestURL = new URL(entry.manifest, base);
    } catch {
      continue;
    }
    if (manifestURL.origin !== new URL(base).origin) continue; // the site's own files only
    models.push({
      name: entry.name.slice(0, NAME_LIMIT),
      parameters: Number(entry.parameters) || 0,
      bytes: Number(entry.bytes) || 0,
      manifestURL: manifestURL.href,
    });
  }
  return models;
}

// Places the picker after `anchor` and returns the <select>; `onChoose(model)` runs when the
// visitor picks another. Each option: "stories260K · 260K parameters · 1.1 MB".
export function modelPicker(anchor, models, chosen, onChoose) {
  const field = document.createElement("div");
  field.className = "model-picker";
  const label = document.createElement("label");
  label.htmlFor = "model-select";
  label.textContent = "Model";
  const select = document.createElement("select");
  select.id = "model-select";
  for (const [index, model] of models.entries()) {
    const option = document.createElement("option");
    option.value = String(index);
    option.textContent = `${model.name} · ${parameters(model.parameters)} parameters · ${megabytes(model.bytes)} MB`;
    option.dataset.name = model.name;
    select.append(option);
  }
  select.value = String(Math.max(0, models.indexOf(chosen)));
  select.addEventListener("change", () => onChoose(models[Number(select.value)]));
  field.append(label, select);
  anchor.after(field);
  return select;
}

export const megabytes = (bytes) => (bytes / 1e6).toFixed(1);
export const parameters = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : `${(n / 1000).toFixed(0)}K`);
