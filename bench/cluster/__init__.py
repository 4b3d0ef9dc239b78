"""The cluster benchmark (``python -m bench.bench_cluster``), one module per measured figure:
instances (``scaling``), rebalance, broker_kill (``broker``), replication (``rf``), replay (``spark``),
and render (the report section); common and cpu hold what they share."""
