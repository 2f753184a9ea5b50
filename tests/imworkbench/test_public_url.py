"""WORKBENCH_PUBLIC_URL fixes absolute links whatever Host header a request carries."""

from __future__ import annotations

import pytest

from imworkbench.settings import Settings
from tests.factories import create_app, gql


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with a public URL."""
    return settings.model_copy(update={"public_url": "https://im.example.com"})


async def test_icon_urls_use_the_public_url(http, tokens):
    """iconUrl is built on the public URL, not on a forged Host header."""
    # given
    await create_app(http, tokens.admin(), identifier="PublicIcon", icon="mail")
    # when
    http.headers["Host"] = "evil.example.net"
    body = await gql(
        http, tokens.user(), "{ workbench(platform: PC) { apps { app { iconUrl } } } }"
    )
    # then
    assert body == {
        "data": {
            "workbench": {"apps": [{"app": {"iconUrl": "https://im.example.com/icons/mail.png"}}]}
        }
    }
