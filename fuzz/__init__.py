"""Coverage-guided fuzzing of every entry point that takes outside bytes (run on demand; see fuzz/run.py)."""
