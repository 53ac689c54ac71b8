"""Prometheus metrics as TF Serving exports them (--monitoring_config_file), at the path its config names.

TF Serving's own metrics, with their names and labels (tensorflow_serving/servables/tensorflow/util.cc:54-90;
the Prometheus text as util/prometheus_exporter.cc writes it: "/" becomes ":", histograms as cumulative _bucket
lines with le=, then _sum and _count):
    :tensorflow:serving:request_count{model_name, status}              counter; status is the gRPC code's name
    :tensorflow:serving:request_latency{model_name, API, entrypoint}    histogram (µs) of answered requests; API
                                                                       predict/classify/regress over REST
                                                                       (http_server.cc:195), Predict/... over gRPC
    :tensorflow:serving:runtime_latency{model_name, API, runtime}       histogram (µs) of the model's own run
    (buckets: TF's Exponential(10, 1.8, 33), as util.cc declares them)
And this server's, for what TF Serving's leave out:
    :tfx_book:serving:request_count{model_name, model_version, signature_name, status}
    :tfx_book:serving:model_version_state{model_name, model_version, state}   1 for each served version's state
    :tfx_book:serving:model_load_latency{model_name, outcome}                 histogram (µs)
    :tfx_book:serving:batch_size{model_name, signature_name}                  histogram of merged batch sizes
"""

from __future__ import annotations

import collections
import threading
from typing import Callable, Dict, List, Tuple

# tensorflow/core/lib/monitoring/sampler.h Buckets::Exponential(scale, growth_factor, bucket_count)
LATENCY_BUCKETS = tuple(10.0 * 1.8**i for i in range(33))
BATCH_BUCKETS = tuple(float(2**i) for i in range(15))


def _number(value: float) -> str:
    """absl::StrCat's rendering of a double (six significant digits, as %g)."""
    return f"{value:.6g}"


def _label_value(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


class _Histogram:
    def __init__(self, limits):
        self.limits = limits
        self.counts = [0] * (len(limits) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        for i, limit in enumerate(self.limits):
            if value < limit:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counters: Dict[str, Dict[Tuple, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
        self._histograms: Dict[str, Dict[Tuple, _Histogram]] = collections.defaultdict(dict)
        self._labels: Dict[str, Tuple[str, ...]] = {}
        self._buckets: Dict[str, Tuple[float, ...]] = {}
        self.gauges: List[Callable[[], List[Tuple[str, Tuple[str, ...], Tuple, int]]]] = []

    def count(self, name: str, labels: Tuple[str, ...], values: Tuple, by: int = 1) -> None:
        with self._lock:
            self._labels[name] = labels
            self._counters[name][tuple(str(v) for v in values)] += by

    def observe(
        self,
        name: str,
        labels: Tuple[str, ...],
        values: Tuple,
        value: float,
        buckets: Tuple[float, ...] = LATENCY_BUCKETS,
    ) -> None:
        with self._lock:
            self._labels[name] = labels
            self._buckets[name] = buckets
            key = tuple(str(v) for v in values)
            if key not in self._histograms[name]:
                self._histograms[name][key] = _Histogram(buckets)
            self._histograms[name][key].add(value)

    # ---- what the server records
    def request(self, model: str, api: str, entrypoint: str, status: str, micros: float, version="", signature=""):
        self.count("/tensorflow/serving/request_count", ("model_name", "status"), (model, status))
        self.count(
            "/tfx_book/serving/request_count",
            ("model_name", "model_version", "signature_name", "status"),
            (model, version, signature, status),
        )
        if status == "OK":
            self.observe(
                "/tensorflow/serving/request_latency",
                ("model_name", "API", "entrypoint"),
                (model, api, entrypoint),
                micros,
            )

    def runtime(self, model: str, api: str, micros: float) -> None:
        self.observe(
            "/tensorflow/serving/runtime_latency", ("model_name", "API", "runtime"), (model, api, "TF2"), micros
        )

    def load(self, model: str, version: int, seconds: float, ok: bool) -> None:
        self.observe(
            "/tfx_book/serving/model_load_latency",
            ("model_name", "outcome"),
            (model, "loaded" if ok else "failed"),
            seconds * 1e6,
        )

    def batch(self, model: str, signature: str, size: int) -> None:
        self.observe(
            "/tfx_book/serving/batch_size", ("model_name", "signature_name"), (model, signature), size, BATCH_BUCKETS
        )

    # ---- the exposition
    @staticmethod
    def _name(name: str) -> str:
        import re

        return re.sub(r"[^a-zA-Z0-9_]", ":", name)

    def render(self) -> str:
        lines = []
        with self._lock:
            counters = {n: dict(v) for n, v in self._counters.items()}
            histograms = {n: {k: (list(h.counts), h.total) for k, h in v.items()} for n, v in self._histograms.items()}
            labels, buckets = dict(self._labels), dict(self._buckets)
        for name in sorted(counters):
            prom = self._name(name)
            lines.append(f"# TYPE {prom} counter")
            for key, value in sorted(counters[name].items()):
                pairs = ",".join(f'{n}="{_label_value(v)}"' for n, v in zip(labels[name], key))
                lines.append(f"{prom}{{{pairs}}} {value}")
        for name in sorted(histograms):
            prom = self._name(name)
            lines.append(f"# TYPE {prom} histogram")
            for key, (counts, total) in sorted(histograms[name].items()):
                pairs = ",".join(f'{n}="{_label_value(v)}"' for n, v in zip(labels[name], key))
                prefix = f"{prom}_bucket{{{pairs}{',' if pairs else ''}"
                cumulative = 0
                limits = list(buckets[name]) + [None]
                for count, limit in zip(counts, limits):
                    cumulative += count
                    lines.append(f'{prefix}le="{_number(limit) if limit is not None else "+Inf"}"}} {cumulative}')
                lines.append(f"{prom}_sum{{{pairs}}} {_number(total)}")
                lines.append(f"{prom}_count{{{pairs}}} {cumulative}")
        for gauge in self.gauges:
            rows = gauge()
            if not rows:
                continue
            prom = self._name(rows[0][0])
            lines.append(f"# TYPE {prom} gauge")
            for _, names, values, value in rows:
                pairs = ",".join(f'{n}="{_label_value(v)}"' for n, v in zip(names, values))
                lines.append(f"{prom}{{{pairs}}} {value}")
        return "\n".join(lines) + "\n"


def model_state_gauge(repository) -> Callable:
    """The state of every version a model's policy names (AVAILABLE, LOADING, END), as a 0/1 gauge."""

    def rows():
        found = []
        for name in repository.model_names():
            try:
                entries = repository.status(name)
            except LookupError:
                continue
            for entry in entries:
                found.append(
                    (
                        "/tfx_book/serving/model_version_state",
                        ("model_name", "model_version", "state"),
                        (name, entry["version"], entry["state"]),
                        1,
                    )
                )
        return found

    return rows


METRICS = Metrics()  # one per server process
