"""The console: the `ceasefire` command, the live view, following and posting, and the demo generator.

What a person at a terminal uses; the services themselves (schemas → ingest → correlate → alert, wired
in services/runtime) import nothing from here.
"""
