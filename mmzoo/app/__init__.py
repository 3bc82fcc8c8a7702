"""Provides the use cases both front ends call: list and show the zoo, train, ensemble, export, bench.

The CLI and the TUI call these with plain arguments, a progress callback (``on_event``: one dict
per event) and a stop hook (``should_stop``); results come back as data for the front end to render.
Nothing here imports mmzoo.cli or mmzoo.tui, and nothing redirects the process's stderr.
"""
