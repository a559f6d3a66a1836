// Typing indicators: what this page sends, and who else is typing.

/**
 * Sends `typing` true at the first keystroke (and again every 3 s while typing goes on, so a
 * receiver's expiry never hides it), then false after 2.5 s without input, or at once on send.
 */
export class TypingSender {
  constructor(send) {
    this.send = send; // (sessionId, isTyping) => void
    this.sessionId = null;
    this.lastTrue = 0;
    this.idle = null;
  }
  input(sessionId) {
    if (!sessionId) return;
    if (this.sessionId && this.sessionId !== sessionId) this.stop();
    this.sessionId = sessionId;
    const now = Date.now();
    if (now - this.lastTrue > 3000) {
      this.lastTrue = now;
      this.send(sessionId, true);
    }
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), 2500);
  }
  stop() {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    if (this.sessionId && this.lastTrue) this.send(this.sessionId, false);
    this.lastTrue = 0;
    this.sessionId = null;
  }
}

/** Others' typing, per session and typist, expiring after 6 s without a refresh. */
export class TypingTracker {
  constructor(onChange) {
    this.onChange = onChange; // (sessionId) => void
    this.typists = new Map(); // sessionId -> Map(key -> {sender, senderId, timer})
  }
  update(frame) {
    const sid = frame.sessionId;
    if (!sid) return;
    const key = String(frame.sender) + ':' + String(frame.senderId);
    let map = this.typists.get(sid);
    if (!map) {
      map = new Map();
      this.typists.set(sid, map);
    }
    const old = map.get(key);
    if (old) clearTimeout(old.timer);
    if (frame.isTyping) {
      const timer = setTimeout(() => this.remove(sid, key), 6000);
      map.set(key, { sender: frame.sender, senderId: frame.senderId, timer });
    } else {
      map.delete(key);
    }
    this.onChange(sid);
  }
  /** A message from that typist ends its typing. */
  spoke(sessionId, sender, senderId) {
    this.remove(sessionId, String(sender) + ':' + String(senderId));
  }
  remove(sid, key) {
    const map = this.typists.get(sid);
    if (!map || !map.has(key)) return;
    clearTimeout(map.get(key).timer);
    map.delete(key);
    this.onChange(sid);
  }
  list(sid) {
    const map = this.typists.get(sid);
    return map ? Array.from(map.values()) : [];
  }
  clear() {
    for (const map of this.typists.values()) for (const t of map.values()) clearTimeout(t.timer);
    this.typists.clear();
  }
}
