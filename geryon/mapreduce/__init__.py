"""mapreduce: caerwyn's Geryon job with its faults handled (docs/mapreduce-tools.md).

Parts: the driver (`geryon mapreduce`, docs/mapreduce.md): `driver.MapReduce(config).
run(map, reduce, disks, R=...)` returns a `driver.JobResult`; its pure core is `job` (the
spec, the blocks, reporter lines) and `tasks` (the task table and its rules), its state
`state`, its display `progress`, results and job lists `parts`.  And the helpers every
task runs, each also a command of its own: `idx` (words as `word 1` lines),
`intermediate` (lines hashed into R partition files) and `agg` (sums of consecutive equal
keys).  Their pure core is `lines`, their I/O `streams`.

This file imports nothing: the helpers start in every map and reduce, and importing
`geryon.mapreduce.idx` runs it first.
"""
