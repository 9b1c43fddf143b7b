"""mapreduce: caerwyn's Geryon job with its faults handled (docs/mapreduce-tools.md).

Parts: the driver (`geryon mapreduce`, to come), and the helpers every task runs, each
also a command of its own: `idx` (words as `word 1` lines), `intermediate` (lines hashed
into R partition files) and `agg` (sums of consecutive equal keys).  Their pure core is
`lines`, their I/O `streams`.

This file imports nothing: the helpers start in every map and reduce, and importing
`geryon.mapreduce.idx` runs it first.
"""
