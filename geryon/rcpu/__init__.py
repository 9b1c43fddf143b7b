"""rcpu: command blocks run on cpu nodes in private name spaces with the disks they name.

block (block text and the exec request), namespace (the name space a block runs in, as a
script for unshare), cache (disks unpacked on a cpu node, by content), commit (what a block
left on its output disk, into the chunk as one transaction), service (the cpu service a
node runs), client (choosing a cpu round-robin and running a block on it).
"""
