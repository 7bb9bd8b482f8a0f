"""AssetSpec metadata keys a stage sets for its checks, in a module without imports.

Stages import these (``from ..checks.keys import TABLE_KEY``) while ``checks.factory``
imports ``assets.common``: keeping the keys here lets either package load first (importing
``mediaintel_dagster.checks`` before the assets was a circular import).
"""

# The contract table an asset writes when its key is another name (two stages share
# `embeddings`), and which of the table's rows are its own: {column: [values]}.
TABLE_KEY = "mediaintel/table"
ROWS_KEY = "mediaintel/check_rows"  # e.g. {"item_kind": ["scene"]}
