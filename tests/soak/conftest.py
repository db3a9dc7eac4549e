"""The soak is a script (`python -m tests.soak.soak`), not a test: pytest collects nothing here."""
collect_ignore_glob = ["*.py"]
