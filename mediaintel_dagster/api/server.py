"""`mediaintel serve`: the REST API and the search page under uvicorn.

Without ``MEDIAINTEL_API_KEYS`` the API asks for no key, so it listens on loopback only:
``serve`` refuses any other address and says so. With keys, any address.
"""

from __future__ import annotations

import sys

from .app import _is_loopback, api_keys_from_config


def serve(host: str = "127.0.0.1", port: int = 8765, workers: int = 1, **kw) -> None:
    """Run the API on ``host:port`` until interrupted: ``workers`` processes, each loading the
    models once (uvicorn's ``create_app`` factory). Other keywords go to ``uvicorn.run``."""
    import uvicorn

    keys = api_keys_from_config()
    if not keys:
        if not _is_loopback(host):
            print(f"mediaintel serve: no MEDIAINTEL_API_KEYS set: the API would answer anyone on {host} without "
                  "a key; set MEDIAINTEL_API_KEYS=key1,key2 to listen there, or serve on 127.0.0.1",
                  file=sys.stderr)
            raise SystemExit(2)
        print(f"mediaintel serve: no MEDIAINTEL_API_KEYS set: no key asked, loopback clients only "
              f"(http://{host}:{port}/)", file=sys.stderr)
    else:
        print(f"mediaintel serve: {len(keys)} API key(s); http://{host}:{port}/ (X-API-Key or Authorization: Bearer)",
              file=sys.stderr)
    kw.setdefault("log_level", "info")
    kw.setdefault("timeout_graceful_shutdown", 5)
    uvicorn.run("mediaintel_dagster.api.app:create_app", factory=True, host=host, port=int(port),
                workers=int(workers), **kw)


__all__ = ["serve"]
