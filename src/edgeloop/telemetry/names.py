"""The span and metric names EdgeLoop's modules use, in one place.

Dashboards, alerts and the trace tests key on these; a module uses the constant rather than
spelling the string. The Prometheus names follow from them (dots become underscores, counters
get ``_total``, a unit suffix is added: ``edgeloop.inference.latency`` in seconds is scraped as
``edgeloop_inference_latency_seconds``).
"""

from __future__ import annotations

# -- spans: one per sample per stage, joined by traceparent ------------------------------------
SPAN_CAPTURE = "capture"
SPAN_INFER = "infer"
SPAN_SELECT = "select"
SPAN_CLAIM = "claim"
SPAN_ENCRYPT = "encrypt"
SPAN_UPLOAD = "upload"
# cloud side, children of the traceparent in the blob's metadata
SPAN_DECRYPT = "decrypt"
SPAN_TRAIN = "train"
SPAN_GATE = "gate"

#: Every edge stage a sample passes through on its way to Blob Storage, in order.
EDGE_STAGES: tuple[str, ...] = (SPAN_CAPTURE, SPAN_INFER, SPAN_SELECT, SPAN_CLAIM, SPAN_ENCRYPT, SPAN_UPLOAD)

# -- span attributes ---------------------------------------------------------------------------
ATTR_SAMPLE_ID = "sample_id"
ATTR_SOURCE_ID = "source_id"
# The four the Azure Percept MM exporter keyed on, kept as they were named there.
ATTR_CONFIDENCE = "confidence"
ATTR_MODEL_NAME = "model_name"
ATTR_MODEL_VERSION = "model_version"
ATTR_FILE_REF = "file_ref"
ATTR_LABEL = "label"
ATTR_SELECTED = "selected"
ATTR_STRATEGY = "strategy"
ATTR_REASON = "reason"
ATTR_BLOB = "blob"
ATTR_BYTES = "bytes"

# -- metrics: counters (unit "1" unless noted) -------------------------------------------------
M_CAPTURED = "edgeloop.capture.samples"  # {source}
M_CAPTURE_BYTES = "edgeloop.capture.bytes"  # By {source}
M_SCORED = "edgeloop.inference.samples"  # {model_version}
M_SELECTED = "edgeloop.filter.selected"  # {strategy}
M_DROPPED = "edgeloop.samples.dropped"  # {module, reason}
M_UPLOADED = "edgeloop.uploader.samples"
M_UPLOAD_BYTES = "edgeloop.uploader.bytes"  # By
M_EVICTIONS = "edgeloop.samples.evicted"  # {module, reason}: TTL, disk budget
M_ERRORS = "edgeloop.errors"  # {module, kind}
# -- metrics: histograms (seconds) -------------------------------------------------------------
M_INFERENCE_LATENCY = "edgeloop.inference.latency"  # per batch {model_version}
M_CAPTURE_TO_SELECTION = "edgeloop.filter.capture_to_selection"
M_UPLOAD_LATENCY = "edgeloop.uploader.latency"  # per blob put
# -- metrics: gauges ---------------------------------------------------------------------------
M_OUTBOX_DEPTH = "edgeloop.uploader.outbox.depth"
M_OUTBOX_AGE = "edgeloop.uploader.outbox.age"  # s, oldest entry
M_VOLUME_USE = "edgeloop.volume.usage"  # By {volume}
M_WINDOW_OPEN = "edgeloop.filter.window_open"  # 1 open, 0 closed {window}
M_DRIFT_PSI = "edgeloop.filter.drift_psi"  # {feature}
# -- metrics: the runtime's own, for every module (observed) -----------------------------------
M_MODULE_EVENTS = "edgeloop.module.events"  # {event}: messages_in, items_out, method_calls...
M_MODULE_PAUSED = "edgeloop.module.paused"
M_MODULE_CONFIG_VERSION = "edgeloop.module.config_version"
