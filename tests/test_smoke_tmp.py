from tests.helpers import create_app, gql, push


async def test_smoke(http, tokens):
    app = await create_app(http, tokens.admin())
    r = await push(http, app["id"], ["1001,1034"])
    assert r.content == b'{"Result":true}'
    body = await gql(http, tokens.user(), "{ workbench(platform: PC) { unreadTotal unseenCount } }")
    assert body == {"data": {"workbench": {"unreadTotal": 1, "unseenCount": 1}}}
