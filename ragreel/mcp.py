"""An MCP server (stdio) for agents: start a video, ask how it is going, get the result.

    python -m ragreel.mcp          # for an agent's MCP configuration: {"command": ".venv/bin/python",
                                   #   "args": ["-m", "ragreel.mcp"], "cwd": "/path/to/ragreel"}

A thin client of the HTTP API (``RAGREEL_API_URL``, default ``http://RAGREEL_API_HOST:RAGREEL_API_PORT``,
with ``RAGREEL_API_TOKEN``), so the same limits, checks and workers apply. Every tool returns at
once: ``make_video`` gives a job id, ``video_status`` says where the job is and, when done, the
answer, its sources and the file URLs.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

from ragreel.settings import Settings, get_settings


def api_base(settings: Settings) -> str:
    return (settings.api_url or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")


class ApiClient:
    """The few API calls the tools make; an API error becomes a readable message for the agent."""

    def __init__(self, settings: Settings) -> None:
        self.base = api_base(settings)
        token = settings.api_token.get_secret_value() if settings.api_token else None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = httpx.request(method, self.base + path, headers=self._headers, timeout=30, **kwargs)
        except httpx.TransportError as exc:
            raise RuntimeError(
                f"the ragreel API at {self.base} cannot be reached ({type(exc).__name__}); "
                "start it with `make up` or set RAGREEL_API_URL"
            ) from None
        body = (
            response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        )
        if response.status_code >= 400:
            detail = body.get("detail", response.text[:300]) if isinstance(body, dict) else body
            raise RuntimeError(f"the ragreel API said {response.status_code}: {detail}")
        return body

    def absolute(self, url: str | None) -> str | None:
        return self.base + url if url and url.startswith("/") else url


def summary(client: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    """What an agent needs from a video job, with absolute URLs."""
    out: dict[str, Any] = {
        "id": job["id"],
        "status": job["status"],
        "stage": job.get("stage"),
        "progress": job.get("progress"),
        "question": job.get("question"),
    }
    if job.get("error"):
        out["error"] = job["error"]
    result = job.get("result")
    if result:
        out["answer"] = result["answer"]
        out["covered"] = result["covered"]
        out["sources"] = [
            {"number": c["number"], "title": c["title"], "source": c["source"], "quote": c["text"][:400]}
            for c in result["sources"]
        ]
        out["video_seconds"] = result.get("video_seconds")
    files = {kind: client.absolute(url) for kind, url in (job.get("files") or {}).items() if url}
    if files:
        out["files"] = files
    return out


def build_server(settings: Settings | None = None):
    from mcp.server.mcpserver import MCPServer

    client = ApiClient(settings or get_settings())
    server = MCPServer(
        name="ragreel",
        instructions="Make short narrated videos that answer a question from the knowledge base, with "
        "sources. make_video returns a job id at once; poll video_status until the status is completed, "
        "failed or cancelled (a video takes a minute or more).",
    )

    @server.tool()
    def make_video(
        question: str,
        language: str | None = None,
        aspect: str | None = None,
        voice: str = "auto",
        video: bool = True,
    ) -> dict[str, Any]:
        """Start a video answering ``question`` (English or Chinese). language: en or zh (default: the
        question's); aspect: landscape, portrait or square; video=false for the answer and sources only.
        Returns the job id and status at once."""
        body = {"question": question, "language": language, "aspect": aspect, "voice": voice, "video": video}
        created = client.call("POST", "/v1/videos", json=body)
        return {"id": created["id"], "status": created["status"]}

    @server.tool()
    def video_status(job_id: str) -> dict[str, Any]:
        """Where the job is (scheduled, running, completed, failed, cancelled), its stage and progress;
        when completed, the answer, its sources and the URLs of the MP4, subtitles and thumbnail."""
        return summary(client, client.call("GET", f"/v1/videos/{job_id}"))

    @server.tool()
    def cancel_video(job_id: str) -> dict[str, Any]:
        """Cancel a video job that has not finished."""
        return summary(client, client.call("DELETE", f"/v1/videos/{job_id}"))

    @server.tool()
    def recent_videos(limit: int = 10) -> list[dict[str, Any]]:
        """The most recent video jobs, newest first."""
        jobs = client.call("GET", "/v1/videos", params={"limit": limit})
        return [summary(client, job) for job in jobs]

    return server


def main() -> int:
    build_server().run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
