"""A local stand-in of Twilio's calls API for the REST adapters' tests: the test decides each answer."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from infra.process import free_port

Answer = Callable[[str, dict[str, str]], tuple[int, dict[str, Any]]]
"""(call SID, the update's form) -> (HTTP status, JSON body)."""


@contextlib.asynccontextmanager
async def calls_api(answer: Answer) -> AsyncIterator[str]:
    """Serve ``POST /2010-04-01/Accounts/{account}/Calls/{sid}.json`` with ``answer``; its base URL."""

    async def update(request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        status, body = answer(request.match_info["call"], form)
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", update)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
