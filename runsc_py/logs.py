"""--log / --log-format: runc-compatible log lines (JSON objects with level, msg, time)."""
from __future__ import annotations

import datetime
import json
import logging


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "level": record.levelname.lower().replace("warning", "warn"),
            "msg": record.getMessage(),
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat().replace("+00:00", "Z"),
        })


def setup(path: str | None, fmt: str, debug: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for h in list(root.handlers):
        root.removeHandler(h)
    if not path:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(
        "time=%(asctime)s level=%(levelname)s msg=%(message)r"))
    root.addHandler(handler)
