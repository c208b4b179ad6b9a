// embed.html's own script: the element needs none, the module a few lines.

import { load } from "../llama2np.js";

const $ = (id) => document.getElementById(id);
let writer = null;
let stop = null;

$("api-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!writer || stop) return;
  stop = new AbortController();
  $("api-write").disabled = true;
  $("api-stop").disabled = false;
  $("api-story").textContent = "";
  try {
    for await (const { text } of writer.generate($("api-prompt").value, { temperature: 0.8, steps: 200, signal: stop.signal })) {
      $("api-story").append(text);
    }
    $("api-status").textContent = "";
  } catch (error) {
    $("api-status").textContent = error.message;
  }
  stop = null;
  $("api-write").disabled = false;
  $("api-stop").disabled = true;
});
$("api-stop").addEventListener("click", () => stop?.abort());

try {
  writer = await load({ onProgress: (fraction) => ($("api-progress").value = fraction) });
  $("api-progress").hidden = true;
  $("api-write").disabled = false;
} catch (error) {
  $("api-status").textContent = error.message;
}
