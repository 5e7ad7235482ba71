"""Run by tests/test_hermes.py with a Python that has rhasspy-hermes (its own venv: it pins an
old paho-mqtt). Reads one JSON object on stdin:

    {"parse": [{"topic": ..., "payload": ...}], "make": [{"class": ..., "fields": {...}}]}

and prints one JSON object: ``parsed`` (each message read by rhasspy-hermes's own class for its
topic, then written back with ``to_dict``, or ``error``) and ``made`` (messages built with
rhasspy-hermes's classes, as Rhasspy sends them: ``topic`` and ``payload``).
"""

import json
import sys

from rhasspyhermes import asr

CLASSES = {
    "AsrTextCaptured": asr.AsrTextCaptured,
    "AsrError": asr.AsrError,
    "AsrStartListening": asr.AsrStartListening,
    "AsrStopListening": asr.AsrStopListening,
    "AsrToggleOn": asr.AsrToggleOn,
    "AsrToggleOff": asr.AsrToggleOff,
}
BY_TOPIC = {cls.topic(): cls for cls in CLASSES.values()}


def parse(topic, payload):
    cls = BY_TOPIC.get(topic)
    if cls is None:
        return {"topic": topic, "error": "no rhasspy-hermes class for this topic"}
    try:
        message = cls.from_json(payload)
    except Exception as err:  # report, do not stop: the test names the message
        return {"topic": topic, "error": f"{type(err).__name__}: {err}"}
    return {"topic": topic, "class": cls.__name__, "message": message.to_dict()}


def make(name, fields):
    cls = CLASSES[name]
    if "reason" in fields:
        fields = dict(fields, reason=asr.AsrToggleReason(fields["reason"]))
    return {"topic": cls.topic(), "payload": cls(**fields).payload()}


def main():
    request = json.load(sys.stdin)
    result = {
        "parsed": [parse(m["topic"], m["payload"]) for m in request.get("parse", [])],
        "made": [make(m["class"], m["fields"]) for m in request.get("make", [])],
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
