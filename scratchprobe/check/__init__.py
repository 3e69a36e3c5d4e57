"""`scratchprobe check`: hold binaries to a policy, for CI.

- `rules`: the rule registry (stable codes, meaning, fix), documented in docs/rules.md;
- `policy`: the policy, from TOML and command-line flags;
- `engine`: `run_check(inspection, policy)`, the per-binary, per-rule outcomes;
- `formats`: one renderer per output format (text, json, sarif, junit, github).

The check builds on `inspect`'s result and never re-resolves anything: a rule is a question
asked of facts the pipeline already found.
"""
