"""Example Switchboard plugin in Python: incoming calls from a caller on the
blocked list are declined with 603. Settings (scope `tenant`):
{"blocked": ["441234567890", "2003"]}"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Decision_Continue,
    Decision_Reject,
    DecisionPoint,
    Rejection,
)


def blocked_list(text):
    v = json.loads(text)
    blocked = v.get("blocked") if isinstance(v, dict) else None
    if not isinstance(blocked, list):
        raise Err("`blocked` must be a list of numbers")
    for x in blocked:
        if not (isinstance(x, str) and x.isdigit()):
            raise Err(f"`blocked` entry {json.dumps(x)} is not a string of digits")
    return blocked


class Handler(exports.Handler):
    def points(self):
        return [DecisionPoint.INCOMING]

    def decide(self, point, input):
        if input.call is None:
            return Decision_Continue()
        try:
            blocked = blocked_list(host.setting("tenant") or '{"blocked": []}')
        except Exception:
            blocked = []
        if input.call.caller.id in blocked:
            host.annotate("blocked caller")
            return Decision_Reject(Rejection(status=603, reason="Decline"))
        return Decision_Continue()

    def validate_settings(self, scope, json_text):
        if scope != "tenant":
            raise Err(f"only the `tenant` scope is used, not `{scope}`")
        try:
            blocked_list(json_text)
        except ValueError as e:
            raise Err(f"not JSON: {e}")
