"""A redis-py subscriber for tests/resp/trigger.rs: pattern-subscribes to every trigger channel
of the Persona server on 127.0.0.1:PORT, prints "ready", reads from standard input how many
messages to expect, receives them (10 s at most each), waits half a second for any extra one,
and prints every message it got as one JSON array of {channel, pattern, data}."""

import json
import sys

import redis


def main() -> None:
    port = int(sys.argv[1])
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    pubsub = client.pubsub()
    pubsub.psubscribe("persona:trigger:*")
    confirm = pubsub.get_message(timeout=10)
    if confirm is None or confirm["type"] != "psubscribe":
        sys.exit(f"no psubscribe confirmation: {confirm!r}")
    print("ready", flush=True)
    expected = int(sys.stdin.readline())
    got = []
    while len(got) < expected:
        msg = pubsub.get_message(timeout=10)
        if msg is None:
            break
        got.append(msg)
    extra = pubsub.get_message(timeout=0.5)
    if extra is not None:
        got.append(extra)
    out = [
        {"type": m["type"], "channel": m["channel"], "pattern": m["pattern"], "data": m["data"]}
        for m in got
    ]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
