"""The REST API (`mediaintel serve`) and its search page: see api/app.py and docs/api.md."""
