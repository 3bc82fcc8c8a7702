"""TUI tests (issue 14 part B): pilot tests at 80x24 on tiny runs."""
