// Starts Pyodide in Node from a site's runtime folder and writes a snapshot of the started
// interpreter's memory; the page restores it instead of starting Python (about 1.5 s saved).
//
//   node make_snapshot.mjs RUNTIME_FOLDER OUT_FILE
//
// The snapshot must come from the very files the site serves: Python's import machinery keeps
// offsets into python_stdlib.zip in its memory. The clock is frozen and the `random` module
// seeded while Python starts, so the same files always give the same snapshot bytes (the page
// reseeds `random` after restoring). The snapshot also holds the standard-library modules that
// installing NumPy and importing llama2np would otherwise import on every visit: Pyodide's
// installer needs the email and metadata ones, NumPy pickle, ctypes and datetime.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [folder, out] = process.argv.slice(2);
if (!folder || !out) {
  console.error("usage: node make_snapshot.mjs RUNTIME_FOLDER OUT_FILE");
  process.exit(2);
}
const indexURL = resolve(folder) + "/";
const { loadPyodide } = await import(pathToFileURL(join(indexURL, "pyodide.mjs")).href);

Date.now = () => 315532800000; // 1980-01-01, the date the site's zips carry
const pyodide = await loadPyodide({
  indexURL,
  lockFileURL: join(indexURL, "pyodide-lock.json"),
  env: { PYTHONHASHSEED: "0" },
  stdout: () => {},
  stderr: (line) => console.error(line),
  _makeSnapshot: true,
});
pyodide.runPython("import random; random.seed(0)");
pyodide.runPython(
  "import __future__, base64, calendar, csv, ctypes, dataclasses, datetime, email.message, " +
    "email.utils, importlib.metadata, numbers, pickle, platform, quopri, tarfile",
);
writeFileSync(out, pyodide.makeMemorySnapshot());
