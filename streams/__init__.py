"""placewatch's I/O shell: settings, sources, sinks, metrics, the composition root and the CLI.

Importing this package does nothing; :func:`streams.app.create_app` wires a run together.
"""
