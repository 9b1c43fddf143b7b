"""Chunk images: receiving one to fill an empty chunk (geryon.chunkfs.image), and the
node's image-put and SFTP writes under attack, through the real node with OpenSSH and an
asyncssh client, the node's memory watched in /proc."""

import asyncio
import os
import subprocess
import time

import pytest

from crafted import bomb_image, image_of, lying_frame, raw_record
from geryon.chunkfs import Chunk, ImageRefused, IncomingImage
from geryon.chunkfs.image import incoming_path, leftovers
from geryon.chunkfs.record import HEADER_SIZE
from support import geryon, member_home, ssh_options, start_node

MiB = 2**20


def image_with(tmp_path, capacity=MiB, files=3):
    source = tmp_path / "source"
    with Chunk.create(source, capacity) as chunk:
        for i in range(files):
            chunk.write(f"d/f{i}", b"data %d\n" % i * 100)
    data = source.read_bytes()
    source.unlink()
    return data


def receive(chunk, data):
    with IncomingImage(chunk) as incoming:
        incoming.write(data)
        return incoming.install(incoming.check())


# The library, without a node.

def test_a_sound_image_replaces_the_empty_chunk_and_is_served_open(tmp_path):
    target = tmp_path / "chunk0"
    data = image_with(tmp_path)
    empty = Chunk.create(target, 2 * MiB)
    chunk = receive(empty, data)
    with chunk:
        assert chunk.path == str(target) and chunk.counts() == (3, 1)
        assert chunk.read("d/f2") == b"data 2\n" * 100
        chunk.write("more", b"still writable")  # the check's open holds the write lock
    assert target.read_bytes()[:len(data)] == data
    assert leftovers(tmp_path) == [] and empty._fd is None  # the old chunk was closed


@pytest.mark.parametrize("name,make,message", [
    ("checksum", lambda d: d[:-1] + bytes([d[-1] ^ 1]), "fails its checksum"),
    ("cut", lambda d: d[:-5], "is cut short"),
    ("header", lambda d: b"nonsense", "not a chunk"),
    ("bomb", lambda d: bomb_image(MiB),
     "is a file record with size 4294967296, more than a chunk of 1048576 bytes can hold"),
    ("lying", lambda d: image_of(MiB, [("a", 4 * 2**17, lying_frame(4 * 2**17, 2**17))]),
     "holds data that does not decompress"),
    ("capacity", lambda d: image_with_capacity(4 * MiB), "it holds a chunk of 4194304 bytes, "
                                                         "more than chunk"),
])
def test_a_bad_image_is_refused_saying_why_and_the_chunk_stays_as_it_was(tmp_path, name,
                                                                        make, message):
    target = tmp_path / "chunk0"
    data = make(image_with(tmp_path))
    with Chunk.create(target, MiB) as chunk:
        before = target.read_bytes()
        with pytest.raises(ImageRefused, match=message) as caught:
            receive(chunk, data)
        assert str(caught.value).startswith("image refused: ")
        assert target.read_bytes() == before and chunk.walk() == []
        assert leftovers(tmp_path) == []
        assert receive(chunk, image_with(tmp_path)).counts() == (3, 1)  # and it takes one


def image_with_capacity(capacity):
    from geryon.chunkfs.record import ChunkHeader, encode_header
    return encode_header(ChunkHeader(capacity, bytes(16)))


def test_a_dead_record_that_lies_is_refused_too(tmp_path):
    data = image_of(MiB, [("a", 2**18, lying_frame(2**18, 2**17))])  # replaced below
    data += raw_record(len(data), "a", 5, b"fresh", flags=0)
    with Chunk.create(tmp_path / "chunk0", MiB) as chunk:
        with pytest.raises(ImageRefused, match=r"record at offset 48 holds data that does not"):
            receive(chunk, data)


def test_only_an_empty_chunk_takes_an_image_one_at_a_time(tmp_path):
    with Chunk.create(tmp_path / "chunk0", MiB) as chunk:
        first = IncomingImage(chunk)
        with pytest.raises(ImageRefused, match="another image for chunk .* is being received"):
            IncomingImage(chunk)
        first.write(image_with(tmp_path))
        image = first.check()
        chunk.write("meanwhile", b"an SFTP client wrote this")
        with pytest.raises(ImageRefused, match=f"chunk {chunk.path} is not empty; an image "
                                               "only fills an empty chunk"):
            first.install(image)
        first.discard()
        assert chunk.read("meanwhile") and leftovers(tmp_path) == []
        with pytest.raises(ImageRefused, match="is not empty"):
            IncomingImage(chunk)


def test_an_image_larger_than_the_chunk_is_refused_as_it_arrives(tmp_path):
    with Chunk.create(tmp_path / "chunk0", 64 * 1024) as chunk:
        with IncomingImage(chunk) as incoming:
            incoming.write(bytes(60 * 1024))
            with pytest.raises(ImageRefused, match="it is larger than chunk .*'s capacity of "
                                                   "65536 bytes"):
                incoming.write(bytes(5 * 1024))
            assert os.path.getsize(incoming_path(chunk.path)) == 60 * 1024
        assert leftovers(tmp_path) == []


# Through a real node.

def rss_kib(proc) -> int:
    with open(f"/proc/{proc.proc.pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


@pytest.fixture
def node(home, registry, tmp_path):
    chunks = tmp_path / "chunks"
    proc = start_node(home, registry.address, chunks, "node0", 1, "4M")
    addr = geryon(home, "regquery", "-R", registry.address, "-n", "resource", "kfs",
                  check=True).stdout.strip()
    proc.chunks, proc.chunk_port = chunks, int(addr.split("!")[2])
    return proc


def ssh(home, port, command, data):
    return subprocess.run(["ssh", *ssh_options(home), "-p", str(port), "admin-1@127.0.0.1",
                           command], input=data, capture_output=True, timeout=60)


def serves(home, node) -> bool:
    listing = subprocess.run(["sftp", *ssh_options(home), "-P", str(node.chunk_port), "-b", "-",
                              "admin-1@127.0.0.1"], input=b"ls -l /\n", capture_output=True,
                             timeout=30)
    return listing.returncode == 0


def test_image_put_refuses_the_4_gib_bomb_and_the_node_stays_small(home, node, tmp_path):
    before = rss_kib(node)
    bomb = bomb_image(4 * MiB)
    assert len(bomb) < 270_000
    result = ssh(home, node.chunk_port, "image-put", bomb)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"image-put: image refused: chunk {node.chunks / '.chunk0.incoming'}: record at offset "
        "48 is a file record with size 4294967296, more than a chunk of 4194304 bytes can "
        "hold, which is not allowed; an image must be whole, with nothing cut off or "
        "damaged: send it again, or check its source with `geryon chunk fsck`")
    lying = image_of(4 * MiB, [(f"f{i}", 4 * MiB - 4096, lying_frame(4 * MiB - 4096, 2**17))
                               for i in range(8)])
    result = ssh(home, node.chunk_port, "image-put", lying)
    assert result.returncode == 1 and b"holds data that does not decompress" in result.stderr
    after = rss_kib(node)
    print(f"node RSS before {before} KiB, after the bombs {after} KiB")
    assert after - before < 40 * 1024
    assert serves(home, node) and not list(node.chunks.glob(".*incoming"))
    good = ssh(home, node.chunk_port, "image-put", image_with(tmp_path))
    assert (good.returncode, good.stdout) == (0, b"3 files\n")


def test_a_monitor_reading_a_file_whose_data_lies_gets_an_error_and_the_node_stays_small(
        home, registry, tmp_path):
    # A chunk copied in by hand, not by image-put: its data is not checked until it is read.
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    (chunks / "chunk0").write_bytes(image_of(4 * MiB, [("lie", 4 * MiB - 64,
                                                        lying_frame(4 * MiB - 64, 2**17))]))
    proc = start_node(home, registry.address, chunks, "node0")
    port = geryon(home, "regquery", "-R", registry.address, "-n", "resource", "kfs",
                  check=True).stdout.strip().split("!")[2]
    monitor = member_home(home, tmp_path / "monitor", "watcher", "monitor")
    before = rss_kib(proc)
    for _ in range(5):
        got = subprocess.run(["sftp", *ssh_options(monitor), "-P", port, "-b", "-",
                              "watcher@127.0.0.1"], input=f"get /lie {tmp_path / 'got'}\n",
                             capture_output=True, text=True, timeout=30)
        assert got.returncode == 1 and "Failure" in got.stderr
    assert rss_kib(proc) - before < 40 * 1024

    async def reason():  # what OpenSSH's sftp does not print
        import asyncssh
        from geryon.ns.ca import Identity
        conn = await asyncssh.connect("127.0.0.1", int(port),
                                      **Identity(monitor).client_options())
        async with conn, conn.start_sftp_client() as sftp:
            with pytest.raises(asyncssh.SFTPFailure) as caught:
                await sftp.open("/lie", "rb")
            return caught.value.reason

    assert asyncio.run(asyncio.wait_for(reason(), 30)) == (
        f"chunk {chunks / 'chunk0'}: cannot read 'lie': its record at offset 48 holds data "
        "that does not decompress (decompression error: Data corruption detected); the chunk "
        f"is damaged there: run `geryon chunk fsck {chunks / 'chunk0'}` to see what else is")


def test_sftp_truncate_and_writes_past_the_free_space_are_refused_at_once(home, node):
    import asyncssh
    from geryon.ns.ca import Identity
    before = rss_kib(node)
    free = 4 * MiB - HEADER_SIZE

    async def attack():
        conn = await asyncssh.connect("127.0.0.1", node.chunk_port,
                                      **Identity(home).client_options())
        async with conn, conn.start_sftp_client() as sftp:
            f = await sftp.open("/big", "wb")
            for request in (lambda: f.truncate(2**31), lambda: f.setstat(
                    asyncssh.SFTPAttrs(size=2**31)), lambda: f.write(b"x", 2**31 - 1)):
                started = time.monotonic()
                with pytest.raises(asyncssh.SFTPFailure) as caught:
                    await request()
                assert time.monotonic() - started < 1
                assert caught.value.reason.startswith(
                    f"big: cannot make the file {2**31} bytes long: disk ")
                assert f"has {free} bytes free (4 MiB); write less, or to another disk" \
                    in caught.value.reason
            await f.close()  # the refused write spoilt the file: nothing is stored
            two = [await sftp.open(f"/half{i}", "wb") for i in range(2)]
            await two[0].write(bytes(3 * MiB), 0)
            with pytest.raises(asyncssh.SFTPFailure, match="other open files hold 3 MiB"):
                await two[1].write(bytes(2 * MiB), 0)
            for f in two:
                await f.close()
            return [name for name in await sftp.listdir("/") if name not in (".", "..")]

    assert asyncio.run(asyncio.wait_for(attack(), 60)) == ["half0"]
    assert rss_kib(node) - before < 40 * 1024
    assert serves(home, node)
