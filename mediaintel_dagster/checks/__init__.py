"""Trust: data-quality checks per lakehouse table (blocking) and drift checks (WARN).

See docs/trust.md. ``build_checks(assets)`` is what ``build_defs`` calls; importing this
package does not import Great Expectations (the check functions do, when they run).
"""

from .drift import drift_checks_for
from .factory import build_checks, checks_for, evaluate_partition, rows_for_partition
from .rules import SPECS, Finding, RuleContext, TableSpec, evaluate

__all__ = ["SPECS", "Finding", "RuleContext", "TableSpec", "build_checks", "checks_for", "drift_checks_for",
           "evaluate", "evaluate_partition", "rows_for_partition"]
