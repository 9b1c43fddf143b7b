"""A word count by a peer of geryon mapreduce: a Dask bag or PySpark, two workers.

    bench/peers/.venv/bin/python bench/peers/wordcount.py ENGINE LISTFILE OUT

ENGINE is `dask` or `spark`; LISTFILE names the input files, one a line; OUT gets a
`word count` line for each word, as `idx FILES | LC_ALL=C sort | agg` prints them (in no
particular order).  A word is what idx counts (geryon/mapreduce/lines.py): each file is read
as bytes, never decoded, so invalid UTF-8 gives the same words; a run of ASCII letters,
digits and underscores, lower-cased, is a word, every other byte (each byte of a non-ASCII
character too) separates words, and a file's end ends its last word.

Each engine is written the way its users would write a word count, with idx's tokenizer:

- dask: a bag of the file names in 16 parts, each name mapped to its file's words,
  `.flatten().frequencies()`, on the processes scheduler with num_workers=2;
- spark: the file names parallelized in 16 slices, `flatMap` to each file's words, `map` to
  (word, 1), `reduceByKey(add)` (which combines on the map side), on master local[2]: no
  UI, bound to 127.0.0.1, logs at ERROR only.

Both read the files in their Python workers.  Spark's own readers (`sc.binaryFiles`,
`sc.textFile`, `sc.wholeTextFiles`) were tried and left: without the native Hadoop library
(the pyspark wheel has none) Hadoop's local file system runs `ls -ld` in a new process for
every file's permissions while it lists the input.  Here that took 6 to 8 s (binaryFiles;
3 s for textFile) before the first task for 533 files, whose count took 15 s through
binaryFiles and 4 s as below: a cost of listing many small local files through Hadoop,
not of counting words.

Runs in the peers' own environment (bench/peers/setup makes it).  bench/mapreduce.py times
the whole command from outside, interpreter and JVM start-up included; on standard error
this prints where the time went, as `wordcount: WHAT: SECONDS s` lines.
"""

import os
import shutil
import sys
import tempfile
import time
from operator import add
from pathlib import Path

STARTED = time.perf_counter()


def _idx_table() -> bytes:
    """idx's own table (geryon/mapreduce/lines.py, pure standard library), loaded as a
    file: this environment has none of geryon's dependencies, so not as a package."""
    import importlib.util
    path = Path(__file__).resolve().parents[2] / "geryon" / "mapreduce" / "lines.py"
    spec = importlib.util.spec_from_file_location("geryon_lines", path)
    lines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lines)
    return lines.WORD_TABLE


WORD_TABLE = _idx_table()


def words_of(data: bytes) -> list[bytes]:
    """idx's words of one file's bytes."""
    return data.translate(WORD_TABLE).split()


def file_words(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        return words_of(f.read())


def partitions(paths: list[str]) -> int:
    """How many parts the files are cut into, for either engine: 8 a worker, so that two
    workers even out the files' sizes."""
    return max(1, min(len(paths), 16))


def report(what: str, seconds: float) -> None:
    print(f"wordcount: {what}: {seconds:.2f} s", file=sys.stderr, flush=True)


def count_dask(paths: list[str]) -> list[tuple[bytes, int]]:
    t = time.perf_counter()
    import dask
    import dask.bag as db
    report("start-up (import dask)", time.perf_counter() - t)
    t = time.perf_counter()
    bag = db.from_sequence(paths, npartitions=partitions(paths))
    counts = bag.map(file_words).flatten().frequencies()
    with dask.config.set(scheduler="processes", num_workers=2):
        result = counts.compute()
    report("count (process pool start-up included)", time.perf_counter() - t)
    return result


def count_spark(paths: list[str]) -> list[tuple[bytes, int]]:
    t = time.perf_counter()
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["SPARK_LOCAL_HOSTNAME"] = "localhost"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark import SparkConf, SparkContext
    scratch = tempfile.mkdtemp(prefix="wordcount-spark-")
    # Spark puts SPARK_CONF_DIR on the driver's class path, where log4j2 finds its file
    os.environ["SPARK_CONF_DIR"] = scratch
    (Path(scratch) / "log4j2.properties").write_text(
        "rootLogger.level = error\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n"
        # pyspark's gateway starts Spark's logging as a shell does, at its own logger's
        # level (WARN, announced on stderr, when that logger has none)
        "logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer\n"
        "logger.gateway.level = error\n")
    conf = (SparkConf().setMaster("local[2]").setAppName("wordcount")
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.driver.host", "127.0.0.1")
            .set("spark.driver.bindAddress", "127.0.0.1")
            .set("spark.driver.memory", "2g")
            .set("spark.local.dir", scratch))
    sc = SparkContext(conf=conf)
    try:
        sc.setLogLevel("ERROR")
        report("start-up (JVM and SparkContext)", time.perf_counter() - t)
        t = time.perf_counter()
        counts = (sc.parallelize(paths, partitions(paths)).flatMap(file_words)
                  .map(lambda word: (word, 1))
                  .reduceByKey(add, numPartitions=2))
        result = counts.collect()
        report("count", time.perf_counter() - t)
    finally:
        t = time.perf_counter()
        sc.stop()
        report("stop", time.perf_counter() - t)
        shutil.rmtree(scratch, ignore_errors=True)
    return result


ENGINES = {"dask": count_dask, "spark": count_spark}


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ENGINES:
        raise SystemExit(f"usage: wordcount.py {{{'|'.join(ENGINES)}}} LISTFILE OUT")
    engine, listfile, out = sys.argv[1:]
    paths = [line for line in Path(listfile).read_text().splitlines() if line]
    if not paths:
        raise SystemExit(f"wordcount: {listfile} names no files")
    result = ENGINES[engine](paths)
    t = time.perf_counter()
    with open(out, "wb") as f:
        f.write(b"".join(b"%s %d\n" % (word, n) for word, n in result))
    report("write", time.perf_counter() - t)
    report("all, in the interpreter", time.perf_counter() - STARTED)


if __name__ == "__main__":
    main()
