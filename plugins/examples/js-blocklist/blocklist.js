// Example tenant plugin in JavaScript: incoming calls from a caller on the
// blocked list are declined with 603. Settings (scope `tenant`):
// {"blocked": ["441234567890", "2003"]}
import { setting, annotate } from 'switchboard:plugin/host@0.3.0';

function blockedList(json) {
  const v = JSON.parse(json);
  if (!Array.isArray(v.blocked)) throw '`blocked` must be a list of numbers';
  for (const x of v.blocked) {
    if (typeof x !== 'string' || !/^[0-9]+$/.test(x)) throw `\`blocked\` entry ${JSON.stringify(x)} is not a string of digits`;
  }
  return v.blocked;
}

export const handler = {
  points() {
    return ['incoming'];
  },
  decide(point, input) {
    if (!input.call) return { tag: 'continue' };
    let blocked = [];
    try { blocked = blockedList(setting('tenant') ?? '{"blocked": []}'); } catch { blocked = []; }
    if (blocked.includes(input.call.caller.id)) {
      annotate('blocked caller');
      return { tag: 'reject', val: { status: 603, reason: 'Decline' } };
    }
    return { tag: 'continue' };
  },
  validateSettings(scope, json) {
    if (scope !== 'tenant') throw `only the \`tenant\` scope is used, not \`${scope}\``;
    blockedList(json);
  },
};
