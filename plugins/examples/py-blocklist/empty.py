"""Continues at once: the cost of asking a Python plugin at all, for the
criterion bench (host/benches/pipeline.rs) next to Rust's and JavaScript's."""

from wit_world import exports
from wit_world.imports.types import Decision_Continue, DecisionPoint


class Handler(exports.Handler):
    def points(self):
        return [DecisionPoint.INCOMING]

    def decide(self, point, input):
        return Decision_Continue()

    def validate_settings(self, scope, json):
        return None
