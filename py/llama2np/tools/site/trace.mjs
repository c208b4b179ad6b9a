// Runs the page's Python in Node, as the worker runs it, and prints what it imported as JSON:
//
//   node trace.mjs RUNTIME_FOLDER CHECKPOINT TOKENIZER > trace.json
//
// RUNTIME_FOLDER holds pyodide.js (Pyodide's module loader), its WebAssembly, the standard
// library zip, the NumPy and llama2np wheels and a pyodide-lock.json naming them. The workload
// below calls what web/worker.js calls (install, Session and each of its methods, the visitor's
// own files, an error crossing into JavaScript), so the modules it imports are the modules the
// page needs: `llama2np build` ships only those (trace.py). Output:
//   {"modules": {name: file}, "libraries": [file, ...]}
// with files as Python sees them (/lib/python312.zip/..., /lib/python3.12/site-packages/...).
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

// A failure prints one line: Node's own report quotes the failing line of Pyodide's minified
// code (a megabyte), which also cuts off the error itself when the output is a pipe.
process.setUncaughtExceptionCaptureCallback((error) => {
  console.error(`${error?.name ?? "Error"}: ${error?.message ?? error}`);
  process.exitCode = 1;
});

const [folder, checkpointPath, tokenizerPath] = process.argv.slice(2);
if (!folder || !checkpointPath || !tokenizerPath) {
  console.error("usage: node trace.mjs RUNTIME_FOLDER CHECKPOINT TOKENIZER");
  process.exit(2);
}
const indexURL = resolve(folder) + "/";
const { loadPyodide } = await import(pathToFileURL(join(indexURL, "pyodide.js")).href);
const pyodide = await loadPyodide({
  indexURL,
  lockFileURL: join(indexURL, "pyodide-lock.json"),
  stdout: () => {},
  stderr: (line) => console.error(line),
  env: { PYTHONOPTIMIZE: "2" }, // as the page starts it: the site's modules have no docstrings
  _makeSnapshot: true, // as the page's first visit starts it
});
const installErrors = [];
await pyodide.loadPackage(["numpy", "llama2np"], { messageCallback: () => {}, errorCallback: (m) => installErrors.push(m) });
if (installErrors.length) throw new Error(installErrors.join(" "));

// Each step as the worker takes it; a step may fail on a model it does not suit (a context
// too short, a tokenizer of a few tokens), and failing imports what failing imports. A module
// that cannot be imported fails the trace.
const failures = [];
const step = (work) => {
  try {
    work();
  } catch (error) {
    failures.push(String(error?.message ?? error));
  }
};
const bytes = (path) => pyodide.toPy(new Uint8Array(readFileSync(path)));
const head = (path) => new Uint8Array(readFileSync(path)).slice(0, 256);
const { Session } = pyodide.pyimport("llama2np.runtime.session");
const session = Session(bytes(checkpointPath), bytes(tokenizerPath), "model.bin", "tokenizer.bin");
step(() => session.info());
for (const explain of [false, true]) {
  step(() => {
    session.start.callKwargs({ prompt: "Once upon a time", temperature: 0.9, topp: 0.9, seed: 42, steps: 48, explain });
    while (!session.done) {
      session.advance(0.05);
      session.explanations();
    }
    session.ending();
    session.stats();
  });
}
step(() => {
  session.start.callKwargs({ prompt: "", temperature: 0, topp: 0.9, seed: 1, steps: 8 });
  while (!session.done) session.advance(0.05);
  session.extend(0);
  session.advance(0.05);
});
step(() => session.start.callKwargs({ prompt: "Once ".repeat(100000), temperature: 1, topp: 0.9, seed: 1, steps: 8 })); // too long
step(() => session.bench(8, 4, 1, null));
step(() => {
  const { plan_opening } = pyodide.pyimport("llama2np.runtime.own_files");
  plan_opening(pyodide.toPy(["a.bin", "b.bin"]), pyodide.toPy([1 << 20, 6000]),
    pyodide.toPy([head(checkpointPath), head(tokenizerPath)]), 1 << 30, 1 << 31);
});
step(() => Session(pyodide.toPy(new Uint8Array(8)), bytes(tokenizerPath), "short.bin", "tokenizer.bin"));
const missing = failures.filter((message) => /ModuleNotFoundError|ImportError/.test(message));
if (missing.length) {
  console.error(missing[0].trim().split("\n").pop());
  process.exit(1);
}
pyodide.runPython("import gc, random; gc.collect(); random.seed()");

const traced = pyodide.runPython(`
import json, sys
json.dumps({
    "modules": {name: module.__file__ for name, module in sorted(sys.modules.items())
                if isinstance(getattr(module, "__file__", None), str)},
    "libraries": sorted(getattr(module, "__file__", "") for module in sys.modules.values()
                        if str(getattr(module, "__file__", "")).endswith(".so")),
})
`);
process.stdout.write(traced + "\n");
