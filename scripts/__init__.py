"""Command-line entry points: argument parsing only, then a call into the packages."""
