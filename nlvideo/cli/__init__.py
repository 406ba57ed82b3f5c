"""Command-line entry points: argparse, printing and exit codes only; the work is elsewhere.

Each command imports torch and the rest of nlvideo only after its arguments are parsed, so
``--help`` is instant.
"""
