"""A file its writer never closed is not stored: when an SFTP session ends (the client went
away, or ended the session with files open), open files are aborted, not closed."""

import asyncio

import asyncssh

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.disk import DiskTree
from geryon.ns.ca import Identity
from support import in_process_server, make_home


def test_a_session_ended_mid_write_stores_nothing_and_a_closed_file_is_kept(tmp_path):
    home = make_home(tmp_path / "admin")
    chunk = Chunk.create(tmp_path / "chunk0", 1 << 20)

    async def write():
        async with in_process_server(home, DiskTree(chunk).root()) as server:
            conn = await asyncssh.connect("127.0.0.1", server.port,
                                          **Identity(home).client_options())
            sftp = await conn.start_sftp_client()
            kept = await sftp.open("/kept", "wb")
            await kept.write(b"whole\n")
            await kept.close()
            half = await sftp.open("/half", "wb")
            await half.write(b"half of it")
            sftp.exit()  # the session ends with /half still open
            await sftp.wait_closed()
            other = await conn.start_sftp_client()
            names = sorted(await other.listdir("/"))
            conn.close()
            return names

    names = asyncio.run(write())
    assert "kept" in names and "half" not in names
    assert chunk.read("kept") == b"whole\n" and not chunk.exists("half")
    chunk.close()
