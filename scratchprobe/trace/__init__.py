"""What static analysis cannot see: `verify --trace` and the include files it learns.

- `includes.py`: `--include` / `--include-from` entries, the TOML include file (read with
  tomllib, written by hand), and their resolution inside `--root` into plan entries;
- `strace.py`: the tracer's command line and a parser of its output;
- `analyse.py`: one traced run against the plan and the builder: misses (classified, with
  the syscall that proves them), confirmed and untouched plan entries, runtime-provided paths;
- `learn.py`: the rounds of run, learn, re-plan.
"""
