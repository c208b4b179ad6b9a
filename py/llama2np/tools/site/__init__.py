"""The static site: the pinned sources, the page's NumPy, the runtime wheel, Python's snapshot,
content-hashed and compressed assets, the zip of the site's own source, the bundler that puts
them together with the page and its models, and the local server."""
