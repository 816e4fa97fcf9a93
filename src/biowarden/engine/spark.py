"""PySpark local mode: one lazily created SparkSession per process, and the Arrow kernel bridge.

The session is ``local[2]`` with the UI off, a quiet log, few shuffle partitions, UTC as the session time
zone and Arrow transfers on. Kernels run inside the executors through ``mapInArrow``; every batch is cast
to the source's exact Arrow types before the kernel sees it (Spark widens or renames some types), so the
kernel gets the same input on either engine.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from biowarden.engine.errors import EngineError

_lock = threading.Lock()
_session: Any = None

_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
# a failing kernel is reported once, as an EngineError naming the worker's error, not as stack traces
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = off
"""


def java_available() -> bool:
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))


def spark_session(**conf: str) -> Any:
    """The process's SparkSession (created on first use). Extra ``conf`` applies only at creation."""
    global _session
    with _lock:
        if _session is not None:
            return _session
        if not java_available():
            raise EngineError("the spark engine needs Java (no `java` on PATH and JAVA_HOME unset)")
        from pyspark.sql import SparkSession

        # Python workers must run this interpreter (it imports biowarden and the kernels' modules).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

        logdir = tempfile.mkdtemp(prefix="biowarden-spark-")
        log4j = os.path.join(logdir, "log4j2.properties")
        with open(log4j, "w") as fh:
            fh.write(_LOG4J2)
        settings = {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
            "spark.sql.execution.arrow.maxRecordsPerBatch": "65536",
            "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
            "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
            "spark.sql.adaptive.enabled": "false",
            "spark.driver.memory": os.environ.get("BIOWARDEN_SPARK_DRIVER_MEMORY", "2g"),
            "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log4j}",
            "spark.sql.warehouse.dir": os.path.join(logdir, "warehouse"),
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
        }
        settings.update(conf)
        builder = SparkSession.builder.master("local[2]").appName("biowarden")
        for k, v in settings.items():
            builder = builder.config(k, v)
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("ERROR")
        return _session


def stop_spark() -> None:
    """Stop the process's SparkSession if one was started."""
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


def spark_schema(schema: pa.Schema) -> Any:
    """The Spark StructType for an Arrow schema, or a clear error for types Spark cannot hold."""
    from pyspark.sql.pandas.types import from_arrow_schema

    try:
        return from_arrow_schema(schema)
    except (TypeError, NotImplementedError, Exception) as exc:  # pyspark raises its own error classes
        raise EngineError(f"the spark engine cannot hold this output schema: {exc}") from None


def to_source_types(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch that came through Spark back to the exact Arrow types of ``schema`` (same names)."""
    if batch.schema.equals(schema):
        return batch
    try:
        cols = [batch.column(f.name).cast(f.type) for f in schema]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
        raise EngineError(f"cannot restore the source types after Spark: {exc}") from None
    return pa.RecordBatch.from_arrays(cols, schema=schema)


class ArrowKernelBridge:
    """The picklable function given to ``mapInArrow``: restore types, run the kernel, keep wanted columns."""

    def __init__(
        self,
        kernel: Callable[[pa.RecordBatch], pa.RecordBatch],
        in_schema: pa.Schema,
        columns: list[str],
        out_schema: pa.Schema,
        spark_out: pa.Schema,
    ) -> None:
        self.kernel = kernel
        self.in_schema = in_schema
        self.columns = columns
        self.out_schema = out_schema
        self.spark_out = spark_out

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows == 0:
                continue
            b = pa.RecordBatch.from_arrays(b.columns, names=self.in_schema.names)
            b = to_source_types(b, self.in_schema).select(self.columns)
            out = self.kernel(b)
            out = out.select(self.out_schema.names).cast(self.out_schema)
            yield out.cast(self.spark_out)
