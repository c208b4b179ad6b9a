// The visitor's own model: a llama2.c checkpoint (version 0, 1 or 2) and its tokenizer .bin,
// opened with the "Open model files" control or dropped on the page. The files are read in the
// browser and never leave it. The page hands the File objects to the worker (no bytes are
// copied on the way), where the runtime tells them apart, sizes them from their headers and
// reads them, with the same sentences as `llama2np validate`.

// Wires the file input and dropping files anywhere on the page to `open(files)`.
export function listenForModelFiles(input, open) {
  input.addEventListener("change", () => {
    if (input.files.length) open([...input.files]);
    input.value = ""; // choosing the same files again opens them again
  });
  document.addEventListener("dragover", (event) => {
    if (!event.dataTransfer?.types.includes("Files")) return;
    event.preventDefault(); // lets the drop happen here instead of the browser opening the file
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!event.dataTransfer?.files.length) return;
    event.preventDefault();
    open([...event.dataTransfer.files]);
  });
}
