"""Servers answer garbage with their own errors and keep serving (property tests against
real server processes)."""

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from support import make_home, start_node, start_registry

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    home = make_home(tmp_path_factory.mktemp("garbage") / "admin")
    registry = start_registry(home)
    node = start_node(home, registry.address, home / "chunks", "node0", 1, "1M")
    yield home, registry, node
    node.stop()
    registry.stop()


async def connect(home, address):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    return await Client.connect(address, Identity(home))


@SETTINGS
@given(st.lists(st.binary(max_size=300), min_size=10, max_size=30))
def test_registry_answers_random_bytes_with_its_errors(servers, blobs):
    from geryon.ns.client import RemoteError
    home, registry, _ = servers

    async def send():
        client = await connect(home, registry.address)
        try:
            before = await client.read("/index")
            for blob in blobs:
                for path in ("/find", "/new"):
                    try:
                        f = await client.open(path, "r+")
                        try:
                            await f.write(blob)
                        finally:
                            await f.close()  # a `new` made by garbage goes at once
                    except RemoteError as err:
                        assert str(err).startswith(f"{registry.address}: write {path}: ")
            assert await client.read("/index") == before  # still serving, nothing left over
        finally:
            await client.close()

    asyncio.run(send())


@SETTINGS
@given(st.lists(st.tuples(st.text(max_size=40), st.binary(max_size=2000)), min_size=5,
                max_size=15))
def test_disk_answers_random_paths_and_data_and_keeps_serving(servers, writes):
    from geryon.ns.client import RemoteError
    home, registry, node = servers

    async def send():
        from geryon.registry.client import query
        reg = await connect(home, registry.address)
        addr = (await query(reg, "resource", "kfs", "host", "node0"))[0].name
        await reg.close()
        disk = await connect(home, addr)
        try:
            for path, data in writes:
                try:
                    await disk.write("/" + path, data)
                except RemoteError as err:
                    assert str(err).startswith(f"{addr}: ")
                    continue
                assert await disk.read("/" + path) == data
            await disk.write("/canary", b"still here")
            assert await disk.read("/canary") == b"still here"
        finally:
            await disk.close()

    asyncio.run(send())
