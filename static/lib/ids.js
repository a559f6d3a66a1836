// Cursors (opaque, ordered within a session) and the ids of messages being sent.

/** Orders two opaque cursors of one session. Today they are decimal strings. */
export function compareCursor(a, b) {
  a = a === null || a === undefined ? '' : String(a);
  b = b === null || b === undefined ? '' : String(b);
  const digits = /^\d+$/;
  if (digits.test(a) && digits.test(b)) {
    const x = a.replace(/^0+(?=\d)/, '');
    const y = b.replace(/^0+(?=\d)/, '');
    if (x.length !== y.length) return x.length - y.length;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

export function maxCursor(a, b) {
  if (a === null || a === undefined) return b;
  if (b === null || b === undefined) return a;
  return compareCursor(a, b) >= 0 ? a : b;
}

export function newClientMessageId(prefix) {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return prefix + '-' + Date.now().toString(36) + '-' + s;
}
