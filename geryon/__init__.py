"""Geryon: a small, shell-native compute cluster.

Every service is an SSH server whose state and controls are a file tree served over SFTP
(see docs/).  Packages: ns (trees over SSH, the cluster CA), registry, chunkfs, rcpu,
mapreduce, owen, web; cli is the `geryon` command.
"""

__version__ = "0.1.0"
