"""Speed: the runtime beside the straightforward port, on CPython and in Chromium's Pyodide."""
