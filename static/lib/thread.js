// The message thread view: ordered, free of duplicates, messages being sent shown apart.

import { h } from './dom.js';
import { compareCursor } from './ids.js';
import { clock, dayLabel, fullWhen, parseTime } from './time.js';

/**
 * A scrolling list of messages, kept in order and free of duplicates. Each message is keyed by
 * its id; messages still being sent are keyed by their clientMessageId until the relay
 * confirms them.
 *   options.viewer: 'gre' or 'player' (whose messages are "mine", on the right)
 *   options.nameOf(message): the sender's display name
 *   options.sessionRank(sessionId): orders sessions when one thread shows several (player)
 *   options.onRetry(pending): a failed message's Retry button
 *   options.renderAttachment(message): the node showing a message's attachment (lib/attachments.js)
 */
export class ThreadView {
  constructor(scroller, list, options) {
    this.scroller = scroller;
    this.list = list;
    this.viewer = options.viewer;
    this.nameOf = options.nameOf;
    this.sessionRank = options.sessionRank || (() => 0);
    this.onRetry = options.onRetry || (() => {});
    this.renderAttachment = options.renderAttachment || null;
    this.messages = new Map(); // id -> message
    this.pending = new Map(); // clientMessageId -> {clientMessageId, text, sessionId, failed, error, createdAt}
    this.nodes = new Map(); // id or 'p:'+cid -> {key, node}
    this.notes = []; // notes under the last message (e.g. "closed")
    this.scheduled = false;
    // Stay at the bottom when the pane changes size (window resize, a growing reply box).
    this.atBottom = true;
    scroller.addEventListener('scroll', () => (this.atBottom = this.nearBottom()), { passive: true });
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => {
        if (this.atBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
      }).observe(scroller);
    }
  }

  clear() {
    this.messages.clear();
    this.pending.clear();
    this.nodes.clear();
    this.notes = [];
    this.list.replaceChildren();
  }

  has(id) {
    return this.messages.has(id);
  }

  /** Adds or replaces a message. Returns true when it was new. */
  upsert(m) {
    if (!m || !m.id) return false;
    const old = this.messages.get(m.id);
    if (old && old.status === m.status && old.message === m.message && old.cursor === m.cursor) return false;
    this.messages.set(m.id, m);
    this.nodes.delete(m.id);
    if (m.clientMessageId && this.pending.has(m.clientMessageId)) {
      this.pending.delete(m.clientMessageId);
      this.nodes.delete('p:' + m.clientMessageId);
    }
    this.schedule(!old && this.isMine(m));
    return !old;
  }

  addPending(p) {
    this.pending.set(p.clientMessageId, p);
    this.nodes.delete('p:' + p.clientMessageId);
    this.schedule(true);
  }

  updatePending(cid, changes) {
    const p = this.pending.get(cid);
    if (!p) return;
    Object.assign(p, changes);
    this.nodes.delete('p:' + cid);
    this.schedule(false);
  }

  dropPending(cid) {
    if (this.pending.delete(cid)) {
      this.nodes.delete('p:' + cid);
      this.schedule(false);
    }
  }

  lastMessage(filter) {
    const sorted = this.sorted();
    for (let i = sorted.length - 1; i >= 0; i--) if (filter(sorted[i])) return sorted[i];
    return null;
  }

  isMine(m) {
    return m.sender === this.viewer;
  }

  sorted() {
    const list = Array.from(this.messages.values());
    list.sort((a, b) => {
      const ra = this.sessionRank(a.sessionId);
      const rb = this.sessionRank(b.sessionId);
      if (ra !== rb) return ra < rb ? -1 : 1;
      if (a.sessionId !== b.sessionId) return a.sessionId < b.sessionId ? -1 : 1;
      return compareCursor(a.cursor, b.cursor);
    });
    return list;
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  schedule(forceScroll) {
    this.forceScroll = this.forceScroll || forceScroll;
    if (this.scheduled) return;
    this.scheduled = true;
    const stick = this.nearBottom();
    queueMicrotask(() => {
      this.scheduled = false;
      this.render(stick || this.forceScroll);
      this.forceScroll = false;
    });
  }

  render(stick) {
    const rows = [];
    let prev = null;
    let prevDay = null;
    let prevSession = null;
    const items = this.sorted().map((m) => ({ kind: 'message', m, when: parseTime(m.createdAt) }));
    for (const p of this.pending.values()) items.push({ kind: 'pending', p, when: p.createdAt });
    for (const item of items) {
      const m = item.kind === 'message' ? item.m : null;
      const sessionId = m ? m.sessionId : item.p.sessionId;
      if (m && prevSession && sessionId !== prevSession) {
        rows.push(h('div', { class: 'divider divider--session', role: 'separator' }, 'New conversation'));
        prev = null;
      }
      if (m) prevSession = sessionId;
      const when = item.when || new Date();
      const day = when.toDateString();
      if (day !== prevDay) {
        rows.push(h('div', { class: 'divider', role: 'separator' }, dayLabel(when)));
        prevDay = day;
        prev = null;
      }
      if (m) {
        const grouped =
          prev &&
          prev.sender === m.sender &&
          prev.senderId === m.senderId &&
          m.sender !== 'system' &&
          when - (parseTime(prev.createdAt) || 0) < 5 * 60 * 1000;
        rows.push(this.messageNode(m, grouped));
        prev = m;
      } else {
        rows.push(this.pendingNode(item.p));
        prev = null;
      }
    }
    for (const note of this.notes) rows.push(h('div', { class: 'divider divider--note', role: 'note' }, note));
    this.list.replaceChildren(...rows);
    if (stick) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.atBottom = this.nearBottom();
  }

  messageNode(m, grouped) {
    const key = m.id + '|' + (grouped ? 'g' : 'h');
    const cached = this.nodes.get(m.id);
    if (cached && cached.key === key) return cached.node;
    const side = m.sender === 'system' ? 'system' : this.isMine(m) ? 'mine' : 'theirs';
    const when = parseTime(m.createdAt);
    const meta = [];
    if (when) {
      meta.push(h('time', { class: 'msg-time', datetime: m.createdAt, title: fullWhen(m.createdAt) }, clock(when)));
    }
    if (side === 'mine') {
      const label = m.status === 'read' ? 'Read' : m.status === 'delivered' ? 'Delivered' : 'Sent';
      meta.push(h('span', { class: 'msg-receipt msg-receipt--' + (m.status || 'sent'), title: label }, label));
    }
    const node = h(
      'div',
      {
        class: 'msg msg--' + side + ' msg--from-' + m.sender + (grouped ? ' msg--grouped' : ''),
        'data-testid': 'message',
        'data-message-id': m.id,
        'data-sender': m.sender,
        'data-status': m.status || '',
      },
      grouped || side === 'system' ? null : h('div', { class: 'msg-name' }, this.nameOf(m)),
      this.bubble(m),
      h('div', { class: 'msg-meta' }, meta)
    );
    this.nodes.set(m.id, { key, node });
    return node;
  }

  /** The bubble: the attachment if any, and the text unless it is only the file's label. */
  bubble(m) {
    const a = m.attachment;
    if (!a || !this.renderAttachment) return h('div', { class: 'msg-bubble' }, h('span', { class: 'msg-text' }, m.message));
    return h(
      'div',
      { class: 'msg-bubble msg-bubble--attachment' },
      this.renderAttachment(m),
      a.messageIsLabel ? null : h('span', { class: 'msg-text' }, m.message)
    );
  }

  pendingNode(p) {
    const cached = this.nodes.get('p:' + p.clientMessageId);
    if (cached) return cached.node;
    const node = h(
      'div',
      {
        class: 'msg msg--mine msg--pending' + (p.failed ? ' msg--failed' : ''),
        'data-testid': 'pending-message',
        'data-client-message-id': p.clientMessageId,
      },
      h('div', { class: 'msg-bubble' }, h('span', { class: 'msg-text' }, p.text || (p.attachmentName ? 'Attachment: ' + p.attachmentName : ''))),
      h(
        'div',
        { class: 'msg-meta' },
        p.failed
          ? [
              h('span', { class: 'msg-error' }, 'Not sent' + (p.error ? ': ' + p.error : '')),
              h('button', { type: 'button', class: 'link-button', onclick: () => this.onRetry(p) }, 'Retry'),
              h('button', { type: 'button', class: 'link-button', onclick: () => this.dropPending(p.clientMessageId) }, 'Discard'),
            ]
          : h('span', { class: 'msg-receipt msg-receipt--sending' }, p.queued ? 'Waiting for the connection…' : 'Sending…')
      )
    );
    this.nodes.set('p:' + p.clientMessageId, { key: 'p', node });
    return node;
  }
}
