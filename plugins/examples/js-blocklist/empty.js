// Continues at once: the cost of asking a JavaScript plugin at all, for the
// criterion bench (host/benches/pipeline.rs) next to Rust's and Python's.
export const handler = {
  points() {
    return ['incoming'];
  },
  decide(point, input) {
    return { tag: 'continue' };
  },
  validateSettings(scope, json) {},
};
