"""The CPython-only tool chain around the runtime, one folder per job: `models/` (model files in
and out), `site/` (the static site and its server), `bench/` (speed). The runtime never imports it."""
