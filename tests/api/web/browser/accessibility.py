"""axe-core (npm, pinned in tests/api/web/browser/package.json, installed by `make setup`) run inside the real Chromium.

The pages' Content-Security-Policy refuses inline scripts, so the contexts that run axe are opened with
`bypass_csp=True`; that changes nothing else about the page."""

from __future__ import annotations

from pathlib import Path

AXE_SCRIPT = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")

_RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      targets: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""


def axe_violations(page) -> list[dict]:
    """Every axe violation of the page as it is now (id, impact, help, up to three targets)."""
    if not AXE_SCRIPT.is_file():
        raise RuntimeError(f"{AXE_SCRIPT} is missing: run `make setup` (it runs npm ci in tests/api/web/browser)")
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    return page.evaluate(_RUN_AXE)


def assert_accessible(page, name: str) -> list[dict]:
    """No serious or critical violation on the page; returns the minor ones (for the report)."""
    violations = axe_violations(page)
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe on {name} ({page.url}): {blocking}"
    return violations
