"""AssetSpec metadata keys a stage sets for its checks, in a module without imports.

Stages import these (``from ..checks.keys import TABLE_KEY``) while ``checks.factory``
imports ``assets.common``: keeping the keys here lets either package load first (importing
``mediaintel_dagster.checks`` before the assets was a circular import).
"""

# The contract table an asset writes when its key is another name (two stages share
# `embeddings`), and which of the table's rows are its own: {column: [values]}.
TABLE_KEY = "mediaintel/table"
ROWS_KEY = "mediaintel/check_rows"  # e.g. {"item_kind": ["scene"]}

# Run metadata a stage reports: a digest of its newest audit row per media of the window.
# Its checks compare it with their last evaluation's and reuse that result when equal.
FINGERPRINT_KEY = "rows_fingerprint"
