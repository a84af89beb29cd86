"""Developer tooling: the static checks (typecheck.py, mpysize.py), the font
generator (mkfont.py), the benchmark runner (bench.py, `make bench`) and a
throw-away PostgreSQL server for tests and benchmarks (pgtmp.py)."""
