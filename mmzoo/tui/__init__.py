"""Provides mmzoo's Textual TUI; `mmzoo.tui.app.make_app` builds it (importing this package imports nothing heavy)."""
