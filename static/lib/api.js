// The relay's REST API.

/** Calls the relay's REST API. Resolves to the parsed body; rejects with .status and .code. */
export async function api(token, method, path, body) {
  const init = {
    method,
    headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
    cache: 'no-store',
    credentials: 'omit',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    const err = new Error('the relay could not be reached');
    err.status = 0;
    err.code = 'network';
    throw err;
  }
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    const info = (data && data.error) || {};
    const err = new Error(info.message || 'HTTP ' + res.status);
    err.status = res.status;
    err.code = info.code || 'http_' + res.status;
    throw err;
  }
  return data;
}

/** Every message of a message-page endpoint, following `hasMore`, oldest first. */
export async function fetchAllPages(token, path, since) {
  let cursor = since || null;
  let sessionId = null;
  const messages = [];
  for (let page = 0; page < 200; page++) {
    const q = new URLSearchParams({ limit: '200' });
    if (cursor) q.set('since', cursor);
    const body = await api(token, 'GET', path + '?' + q.toString());
    sessionId = body.sessionId || sessionId;
    for (const m of body.messages || []) messages.push(m);
    cursor = body.nextCursor || cursor;
    if (!body.hasMore || !(body.messages || []).length) break;
  }
  return { sessionId, messages, cursor };
}

/**
 * The messages of a `messages_updated` frame (many messages of a session changed at once), read
 * again: every message of `path` after the one before `fromCursor`, up to `toCursor`. Cursors are
 * opaque on the wire; today they are message numbers, which is what docs/protocol.md tells a
 * client to rely on here.
 */
export async function fetchChangedRange(token, path, fromCursor, toCursor) {
  const before = BigInt(fromCursor) - 1n;
  const last = BigInt(toCursor);
  const { messages } = await fetchAllPages(token, path, before > 0n ? String(before) : null);
  return messages.filter((m) => BigInt(m.cursor) <= last);
}
