"""The dialer tests share one running outbound-call path (it takes seconds to start)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from dialer_rig import DialerRig

from infra.settings import Settings


@pytest.fixture(
    scope="module"
)  # its workers must not outlive the dialer tests (package scope does not end at a plain directory)
async def rig(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DialerRig]:
    running = DialerRig(settings, tmp_path_factory.mktemp("dialer"))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
