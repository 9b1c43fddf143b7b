"""Faults: images cut off in transit, a node SIGKILLed while it receives one, a node
SIGKILLed while a client writes a file.  Afterwards nothing half-written shows and every
chunk still opens and serves."""

import asyncio
import os
import signal

import pytest

from support import geryon, start_node, wait_for


@pytest.fixture
def node_and_image(home, registry, tmp_path):
    from geryon.chunkfs.chunk import Chunk
    chunks = tmp_path / "chunks"
    node = start_node(home, registry.address, chunks, "node0", 1, "4M")
    image = tmp_path / "image"
    with Chunk.create(image, 4 << 20) as chunk:
        for i in range(40):
            chunk.write(f"f{i}", os.urandom(50_000))  # ~2 MB that does not compress
    addr = geryon(home, "regquery", "-R", registry.address, "-n", "resource", "kfs",
                  check=True).stdout.strip()
    return node, chunks, image.read_bytes(), addr


async def start_put(home, addr, data):
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    client = await Client.connect(addr, Identity(home))
    proc = await client.conn.create_process("image-put", encoding=None)
    proc.stdin.write(data)
    await proc.stdin.drain()
    return client, proc


def registered_used(home, registry):
    line = geryon(home, "regquery", "-R", registry.address, "resource", "kfs").stdout
    return int(line.split(" used ")[1].split()[0]) if line else None


def test_an_image_cut_off_in_transit_is_refused_and_the_chunk_stays_empty(
        home, registry, node_and_image):
    node, chunks, data, addr = node_and_image

    async def cut_off():
        client, proc = await start_put(home, addr, data[:len(data) // 2])
        proc.stdin.write_eof()
        await proc.wait_closed()
        result = proc.exit_status, (await proc.stderr.read()).decode()
        await client.close()
        return result

    status, err = asyncio.run(cut_off())
    assert status == 1 and "image refused: " in err and "is cut short" in err
    assert registered_used(home, registry) == 48  # the header only: still empty
    assert not list(chunks.glob(".*incoming"))


def test_a_node_killed_while_receiving_comes_back_with_the_chunk_as_it_was(
        home, registry, node_and_image, tmp_path):
    from geryon.chunkfs.chunk import Chunk
    node, chunks, data, addr = node_and_image

    async def killed_midway():
        client, proc = await start_put(home, addr, data[:len(data) // 2])
        wait_for(lambda: list(chunks.glob(".*incoming")), what="the node to be receiving")
        node.kill(signal.SIGKILL)
        await client.close()

    asyncio.run(killed_midway())
    assert list(chunks.glob(".*incoming"))  # the half image is there ...
    node = start_node(home, registry.address, chunks, "node0")
    assert not list(chunks.glob(".*incoming"))  # ... and is cleared away at start
    with Chunk.open(chunks / "chunk0", readonly=True) as chunk:
        assert chunk.walk() == [] and chunk.repair is None
    wait_for(lambda: registered_used(home, registry) == 48, what="the empty chunk to register")
    # and the chunk takes a whole image afterwards
    new_addr = geryon(home, "regquery", "-R", registry.address, "-n", "resource", "kfs",
                      check=True).stdout.strip()

    async def whole():
        client, proc = await start_put(home, new_addr, data)
        proc.stdin.write_eof()
        await proc.wait_closed()
        out = (await proc.stdout.read()).decode()
        await client.close()
        return proc.exit_status, out

    assert asyncio.run(whole()) == (0, "40 files\n")


def test_a_node_killed_while_a_file_is_written_keeps_no_part_of_it(home, registry,
                                                                   node_and_image):
    from geryon.chunkfs.chunk import Chunk
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    node, chunks, _, addr = node_and_image

    async def write_then_die():
        client = await Client.connect(addr, Identity(home))
        await client.write("/kept", b"whole\n")
        f = await client.open("/partial", "w")
        await f.write(b"x" * 100_000)  # gathered on the node until close ...
        node.kill(signal.SIGKILL)  # ... which never comes
        await client.close()

    asyncio.run(write_then_die())
    with Chunk.open(chunks / "chunk0", readonly=True) as chunk:
        assert [e.path for e in chunk.walk()] == ["kept"]
        assert chunk.read("kept") == b"whole\n"
        assert chunk.repair is None
