"""The runtime: what the browser's worker runs and the command line runs, the very same modules.

Standard library and NumPy only, so that Pyodide runs it unchanged; the site's wheel is this
folder. The command line (`cli`, `console`, `extras`, `commands/`) and the CPython-only tool
chain (`tools/`) sit around it and are never imported by it.

- checkpoint.py: llama2.c's checkpoint formats read into arrays (versions 0, 1, 2)
- tokenizer.py: llama2.c's tokenizer format; run.c's encoder and decoder
- model/: the forward pass (`make_model`)
- sampler.py: run.c's sampler (xorshift RNG, argmax, multinomial, top-p)
- generate.py: run.c's generation loop, driven a slice at a time (`Story`)
- session.py: what the browser worker calls; own_files.py sizes a visitor's own files
- baseline.py: the straightforward port, the yardstick of benchmark.py
- errors.py, files.py: sentences for bad input, and files read safely
"""
