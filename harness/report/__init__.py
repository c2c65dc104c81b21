"""What a person reads after a harness run, and what they sign.

- `records`: the one document (`report.json`) every page renders: verdict, summary rows, gate records.
- `markdown`, `html` (+ `templates/`): `report.md` and the self-contained `report.html`, from that document only.
- `write`: writes the three files atomically; re-renders the pages when a sign-off is added.
- `plots`: every figure a check draws, from arrays and plain records (no pyplot state).
- `browser`: headless Chromium, to check the page renders as a reviewer's browser shows it.
- `signoff`: `harness signoff`, a reviewer's decision recorded against the run's fingerprint.
"""
