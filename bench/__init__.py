"""`make bench`: throughput and latency figures, each beside a ceiling measured in the same run."""
