"""The Python daemon of the replay's Spark workers: pyspark's own, with the imports done once.

pyspark forks one Python worker per task from this daemon (``spark.python.daemon.module``).
Modules imported here are inherited by every fork, so the workers do not each import River,
pyarrow and kappaml again: about two seconds of CPU per worker, paid at the start of the
replay, when the JVM is busy starting the Kafka read too.
"""

import pyspark.worker  # noqa: F401 - what each forked worker runs
from pyspark import daemon

import spark_batch.stream  # noqa: F401 - the replay's worker code and what it imports

if __name__ == "__main__":
    daemon.manager()
