"""FUSION's validation and regression harness (`harness run`, `pytest harness/`).

The layout is the architecture:

- `registry` — the one list of checks (name, module, per-case or not, suites, gate section);
  `gates` — every threshold, settable by `harness run --config FILE`;
  `runner` — plans the cases of each check, runs and times them, resumes, writes one verdict;
  `cli` — `harness run | gates | capture | baseline | signoff`.
- `checks/` — one module (or subpackage) per check, each `run_check(ctx) -> CheckResult`
  with structured gate records; `checks/__init__` is the contract and says how to add one.
- `cases/` — case folders and the reference files in them, the table-comparison engine,
  `harness capture` and its driver, and the baselines `drift` compares with.
- `sim/` — the simulation machinery of SBC, coverage, stability and the likelihood evidence:
  model variants, designs, fitting, the parallel map, the replicate store, rank statistics.
- `report/` — `report.json`, `report.md`, `report.html`, the plots, the browser check, sign-off.
- `testing/` — what the tests share (contexts over the bundled cases, planted defaults) and the
  golden tables' syrupy extension; never imported by `harness run`.
- `release_tests/` — the checks as pytest collects them (`pytest harness/`);
  the unit tests of this code live in the repository's `tests/harness/`.
- `asserts`, `result_store`, `runlog`, `progress`, `paths` — graded asserts, the result store,
  an output folder's bookkeeping, the replicate bar, where the checkout is.
"""
