"""CPython-only tooling around the runtime: fetching, benchmarks, the site bundler, the local
server, checkpoint validation and export, tokenizer training. The runtime never imports this."""
