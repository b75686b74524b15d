"""Serve the HTTP API and the web page.

    python -m ragreel.api                        # http://127.0.0.1:8000 (RAGREEL_API_HOST/PORT)
    RAGREEL_API_TOKEN=... python -m ragreel.api --host 0.0.0.0

Jobs run on the workers of the RAGREEL_WORK_POOL pool through the Prefect server that
PREFECT_API_URL names (``make up`` starts all of it). Off 127.0.0.1 every request needs the token.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from ragreel.cli import run_command
from ragreel.errors import InputError
from ragreel.settings import get_settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ragreel.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="address to listen on (default RAGREEL_API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default RAGREEL_API_PORT, 8000)")
    args = parser.parse_args(argv)

    def serve() -> int:
        import uvicorn

        from ragreel.api.app import create_app

        settings = get_settings()
        host, port = args.host or settings.api_host, args.port or settings.api_port
        if not is_loopback(host) and settings.api_token is None:
            raise InputError(
                f"the API would listen on {host} with no token: anyone who can reach it could run jobs",
                stage="api",
                hint="set RAGREEL_API_TOKEN, or listen on 127.0.0.1",
            )
        print(f"ragreel API and web page on http://{host}:{port}/ (OpenAPI docs at /docs)", flush=True)
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
        return 0

    return run_command(serve, "api")


if __name__ == "__main__":
    sys.exit(main())
