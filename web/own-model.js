// The visitor's own model: a llama2.c checkpoint (version 0, 1 or 2) and its tokenizer .bin,
// opened with the "Open model files" control or dropped on the page. The files are read in the
// browser and never leave it. The page hands the File objects to the worker (no bytes are
// copied on the way); the worker sorts and sizes them here, from their headers only, and then
// the runtime's own loader checks everything else, with the same sentences as `llama2np validate`.

const MAGIC = 0x616b3432; // "ak42": llama2.c export.py's versions 1 and 2
const HEADER_BYTES = 41; // magic, version, 7 config ints, shared flag, group size

// Pyodide 0.27's WebAssembly memory can grow to 4 GiB; Python and NumPy hold part of it already.
export const WASM_MEMORY_LIMIT = 4 * 2 ** 30;
// No llama2.c tokenizer comes near this (Llama 2's 32,000 pieces take 424 KB).
export const TOKENIZER_LIMIT = 64 * 2 ** 20;

const megabytes = (bytes) => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`);

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

// {checkpoint, tokenizer, header} from the files chosen, or an Error with a sentence. A file
// with llama2.c's export magic is the checkpoint; a legacy checkpoint has no magic, and the
// larger of the two files is taken for it (its weights outweigh any tokenizer). If they were the
// other way round, the runtime's loader says what does not fit.
export async function sortModelFiles(files) {
  if (files.length !== 2) {
    throw new Error(`Open two files together: a llama2.c checkpoint and its tokenizer .bin (${files.length} ${files.length === 1 ? "was" : "were"} given).`);
  }
  const headers = await Promise.all(files.map(readHeader));
  const magic = headers.map((view) => view.byteLength >= 4 && view.getUint32(0, true) === MAGIC);
  const index = magic[0] === magic[1] ? (files[0].size >= files[1].size ? 0 : 1) : magic.indexOf(true);
  return { checkpoint: files[index], tokenizer: files[1 - index], header: headers[index] };
}

async function readHeader(file) {
  return new DataView(await file.slice(0, HEADER_BYTES).arrayBuffer());
}

// Throws an Error with a sentence for a file that cannot fit before a byte of it is read:
// the checkpoint's bytes, plus its float32 weights when they are Q8_0 (version 2), plus its
// key-value cache must fit in the WebAssembly memory that is still free (`free` bytes).
export function checkFits({ checkpoint, tokenizer, header }, free) {
  if (tokenizer.size > TOKENIZER_LIMIT) {
    throw new Error(`${tokenizer.name} is ${megabytes(tokenizer.size)}, too large for a llama2.c tokenizer (at most ${megabytes(TOKENIZER_LIMIT)}); open the tokenizer .bin that belongs to the model.`);
  }
  const need = checkpoint.size + dequantized(checkpoint.size, header) + cacheBytes(header) + tokenizer.size;
  if (need > free) {
    throw new Error(`${checkpoint.name} needs about ${megabytes(need)} of memory, but this page has ${megabytes(Math.max(0, free))} left of the ${megabytes(WASM_MEMORY_LIMIT)} WebAssembly can address; use a smaller model, or run it with \`llama2np generate\`.`);
  }
}

// A version 2 file is read into float32: each group of `group` int8 weights and its float32
// scale become 4 bytes a weight. Norms stay float32 in both, so this is a slight overestimate.
function dequantized(size, header) {
  if (header.byteLength < HEADER_BYTES || header.getUint32(0, true) !== MAGIC || header.getInt32(4, true) !== 2) return 0;
  const group = header.getInt32(37, true);
  return group > 0 ? Math.ceil((size * 4 * group) / (group + 4)) : 0;
}

// The key-value cache the runtime reserves: layers x context x kv_dim, keys and values, float32.
// Garbage headers give garbage sizes; the loader rejects those with its own sentences, so any
// nonsense here counts for nothing.
function cacheBytes(header) {
  const offset = header.byteLength >= 4 && header.getUint32(0, true) === MAGIC ? 8 : 0;
  if (header.byteLength < offset + 28) return 0;
  const [dim, , layers, heads, kvHeads, , context] = Array.from({ length: 7 }, (_, i) => header.getInt32(offset + 4 * i, true));
  if (!(dim > 0 && layers > 0 && heads > 0 && kvHeads > 0 && context > 0)) return 0;
  const bytes = 2 * 4 * layers * Math.abs(context) * ((dim * kvHeads) / heads);
  return Number.isFinite(bytes) ? bytes : 0;
}
