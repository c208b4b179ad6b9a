"""The static site: the pinned sources, the page's NumPy, the runtime wheel, Python's snapshot,
the bundler that puts them together with the page and a model, and the local server."""
