"""Time-based work: a table of tasks due at an instant (in real or test-clock time), the registry of what each
kind of task does, and the runner that executes each task exactly once."""
