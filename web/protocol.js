// The messages between the page and its worker, defined once.
//
// Plain objects with a `type`, between web/story-writer.js and web/worker.js:
//   in:  load {pyodideURL, modelURL, quietSeconds?} | model {modelURL} (another of the site's
//        models, in the same Python; answered by progress and ready, or a non-fatal error)
//        | generate {id, prompt, temperature, topp, seed, steps, explain} | continue {id}
//        | stop {id} | explain {id} (the last story's probabilities, worked out afterwards)
//        | bench {id, steps, promptTokens, repeats, engines} | open {id, files: [File, File]}
//   out: progress {stage: "file", url, wire, done} (bytes on the wire) | progress {stage: "listed"}
//        | progress {stage, label}
//        | ready {model, seconds, fromSnapshot, stages, resources}
//        | start {id, promptText, seed, steps} | continued {id, steps, takenBack}
//        | tokens {id, text, pieces?} | done {id, stopped, ended, canContinue, stats}
//        | explained {id, tokens} | bench-result {id, results} | error {id?, fatal, message}
//        | opened {id, model, seconds, heap} | open-failed {id, message}
//
// `pieces` (with `explain`) are the tokens one by one with their probabilities (Session.explanations).

// Settings travel by name, as in `generate`, and reach Python by name (Session.start).

export const IN = Object.freeze({ // page -> worker
  LOAD: "load", MODEL: "model", GENERATE: "generate", CONTINUE: "continue", STOP: "stop",
  EXPLAIN: "explain", BENCH: "bench", OPEN: "open",
});

export const OUT = Object.freeze({ // worker -> page
  PROGRESS: "progress", READY: "ready", START: "start", CONTINUED: "continued", TOKENS: "tokens",
  DONE: "done", EXPLAINED: "explained", BENCH_RESULT: "bench-result", ERROR: "error", OPENED: "opened", OPEN_FAILED: "open-failed",
});
