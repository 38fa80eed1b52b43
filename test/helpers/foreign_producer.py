"""A producer that is not kafkajs: librdkafka through Python's confluent-kafka, as platform teams produce.

Writes to one topic, with every codec Kafka defines, keys and headers, idempotence, tombstones and other bad
messages, Confluent's wire format, and committed plus aborted transactions. Prints what it wrote as one JSON
object on stdout, so the test knows exactly what must be stored and what must be dead-lettered.

usage: foreign_producer.py BROKERS TOPIC RUN_ID
"""

import hashlib
import json
import struct
import sys

from confluent_kafka import Producer

brokers, topic, run = sys.argv[1], sys.argv[2], sys.argv[3]
CODECS = ["gzip", "snappy", "lz4", "zstd", "none"]
PER_CODEC = 200

manifest = {"stored_usage": [], "stored_logs": [], "aborted": [], "dead": []}
errors = []


def delivered(err, _msg):
    if err is not None:
        errors.append(str(err))


def usage(event_id, i):
    return {
        "event_id": event_id,
        "type": ["session_start", "activity", "session_end"][i % 3],
        "timestamp": "2025-03-%02dT10:%02d:00Z" % (1 + i % 28, i % 60),
        "user_id": "py-u%d" % (i % 37),
        "team_id": "py-t%d" % (i % 5),
        "service": "py-service",
        "session_id": "py-s%d" % (i // 3),
    }


def send(p, event, headers, stored=True):
    p.produce(topic, key=event["user_id"], value=json.dumps(event).encode(), headers=headers)
    if stored:
        manifest["stored_usage"].append(event["event_id"])


def bad(p, key, value, reason):
    p.produce(topic, key=key, value=value, headers=[("producer", b"confluent-kafka")])
    manifest["dead"].append({"key": key, "reason": reason})


for codec in CODECS:
    p = Producer(
        {
            "bootstrap.servers": brokers,
            "compression.type": codec,
            "enable.idempotence": True,
            "linger.ms": 20,
            "client.id": "foreign-%s" % codec,
            "on_delivery": delivered,
        }
    )
    headers = [("producer", b"confluent-kafka"), ("codec", codec.encode()), ("trace-id", b"\x00\x01\x02")]
    for i in range(PER_CODEC):
        send(p, usage("py-%s-%s-%d" % (run, codec, i), i), headers)
    log = {
        "event_id": "py-%s-%s-log" % (run, codec),
        "type": "log",
        "timestamp": "2025-03-02T11:00:00Z",
        "severity": "warning",
        "service": "py-service",
        "message": "compressed with %s" % codec,
    }
    p.produce(topic, key="py-service", value=json.dumps(log).encode(), headers=headers)
    manifest["stored_logs"].append(log["event_id"])
    # Confluent's wire format: magic byte 0, a 4-byte schema id, then the JSON.
    framed = usage("py-%s-%s-confluent" % (run, codec), 7)
    p.produce(topic, key=framed["user_id"], value=b"\x00" + struct.pack(">I", 42) + json.dumps(framed).encode())
    manifest["stored_usage"].append(framed["event_id"])
    bad(p, "%s-tombstone" % codec, None, "empty")
    bad(p, "%s-latin1" % codec, '{"service":"caf\xe9"}'.encode("latin-1"), "encoding")
    bad(p, "%s-array" % codec, json.dumps([usage("py-%s-%s-in-array" % (run, codec), 1)]).encode(), "not an object")
    p.poll(0)
    if p.flush(30) != 0:
        errors.append("%s: messages still queued after 30 s" % codec)

# CloudEvents in binary mode: the attributes in ce_* headers, the event's other fields as the value. Tally
# derives event_id from (source, id); computed here independently to check it.
def cloud_event_id(source, id_):
    pair = json.dumps([source, id_], separators=(",", ":"), ensure_ascii=False)
    return "ce-" + hashlib.sha256(pair.encode()).hexdigest()[:40]


cp = Producer({"bootstrap.servers": brokers, "compression.type": "zstd", "on_delivery": delivered})
source = "/py/%s" % run
for i in range(3):
    data = {"user_id": "py-ce-u%d" % i, "team_id": "py-t1", "service": "py-service"}
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", ("c-%d" % i).encode()),
        ("ce_source", source.encode()),
        ("ce_type", b"com.example.py.activity"),
        ("ce_time", ("2025-03-0%dT12:00:00Z" % (i + 1)).encode()),
        ("content-type", b"application/json"),
    ]
    cp.produce(topic, key=data["user_id"], value=json.dumps(data).encode(), headers=headers)
    manifest["stored_usage"].append(cloud_event_id(source, "c-%d" % i))
no_time = [("ce_specversion", b"1.0"), ("ce_id", b"c-no-time"), ("ce_source", source.encode()), ("ce_type", b"activity")]
cp.produce(topic, key="ce-no-time", value=json.dumps({"user_id": "u", "team_id": "t", "service": "s"}).encode(), headers=no_time)
manifest["dead"].append({"key": "ce-no-time", "reason": "time"})
cp.flush(30)

# Transactions: committed ones count, aborted ones never do (their bad message is not dead-lettered either).
tp = Producer(
    {
        "bootstrap.servers": brokers,
        "transactional.id": "foreign-%s" % run,
        "compression.type": "lz4",
        "linger.ms": 5,
        "on_delivery": delivered,
    }
)
tp.init_transactions(30)
for name, n, commit in [("commit-a", 100, True), ("abort", 100, False), ("commit-b", 50, True)]:
    tp.begin_transaction()
    for i in range(n):
        event = usage("py-%s-tx-%s-%d" % (run, name, i), i)
        send(tp, event, [("txn", name.encode())], stored=commit)
        if not commit:
            manifest["aborted"].append(event["event_id"])
    if not commit:
        tp.produce(topic, key="tx-abort-bad", value=b"\xff\xfe not utf-8")
    tp.flush(30)
    if commit:
        tp.commit_transaction(30)
    else:
        tp.abort_transaction(30)

manifest["errors"] = errors
print(json.dumps(manifest))
