"""A Kafka client for tests against the test bed's tansu broker (confluent-kafka, librdkafka 2.16).

Run with the venv's python and LD_LIBRARY_PATH unset or set to SWITCHYARD_RDKAFKA2_LIBDIR:

  kafka_tool.py BROKERS create TOPIC PARTITIONS [NAME=VALUE...]   create a topic with configs
  kafka_tool.py BROKERS describe TOPIC            {"partitions": N, "configs": {...}} (JSON)
  kafka_tool.py BROKERS produce TOPIC COUNT       records k<i> / "<partition>:<i>", i spread
                                                  over every partition in turn
  kafka_tool.py BROKERS consume TOPIC COUNT [SECONDS]
                                                  [[partition, key, value], ...] (JSON) of
                                                  every partition from its start, until COUNT
                                                  records or SECONDS (default 30) passed
Exits 1 with the error on standard error when the broker refuses.
"""
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def partitions(admin, topic):
    metadata = admin.list_topics(timeout=10)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise SystemExit(f"topic {topic} does not exist")
    return len(metadata.topics[topic].partitions)


def main(brokers, command, topic, *rest):
    admin = AdminClient({"bootstrap.servers": brokers})
    if command == "create":
        configs = dict(item.split("=", 1) for item in rest[1:])
        admin.create_topics([NewTopic(topic, int(rest[0]), 1, config=configs)])[topic].result(15)
    elif command == "describe":
        described = list(admin.describe_configs([ConfigResource("topic", topic)]).values())[0].result(15)
        configs = {name: entry.value for name, entry in described.items() if entry.value is not None}
        print(json.dumps({"partitions": partitions(admin, topic), "configs": configs}))
    elif command == "produce":
        count, width = int(rest[0]), partitions(admin, topic)
        producer = Producer({"bootstrap.servers": brokers})
        for i in range(count):
            producer.produce(topic, f"{i % width}:{i}".encode(), key=f"k{i}".encode(), partition=i % width)
        if producer.flush(30) != 0:
            raise SystemExit("not every record was delivered within 30 s")
    elif command == "consume":
        count, seconds = int(rest[0]), float(rest[1]) if len(rest) > 1 else 30.0
        width = partitions(admin, topic)
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": "kafka-tool", "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(width)])
        records, deadline = [], time.monotonic() + seconds
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            key = message.key().decode() if message.key() is not None else None
            records.append([message.partition(), key, message.value().decode()])
        consumer.close()
        print(json.dumps(records))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(*sys.argv[1:])
