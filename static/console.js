// /console: the GRE staff console. Sessions from REST, then live from the WebSocket (staff receive
// every session's events); the selected thread from REST, then followed exactly with
// `subscribe` + `since` (also after every reconnect). See docs/protocol.md.

import { api, fetchAllPages, fetchChangedRange } from './lib/api.js';
import { bindComposer, pendingMessage, textTooLong } from './lib/composer.js';
import { attachmentNode, bindAttachments } from './lib/attachments.js';
import { $, h } from './lib/dom.js';
import { Desk } from './lib/desk.js';
import { compareCursor, maxCursor } from './lib/ids.js';
import { bindConnectionStatus } from './lib/relay.js';
import { bindSignIn } from './lib/signin.js';
import { ThreadView } from './lib/thread.js';
import { coalesce, parseTime, shortWhen } from './lib/time.js';
import { TypingSender, TypingTracker } from './lib/typing.js';
import { Reports } from './reports.js';

/** How long arriving messages are gathered before one mark_read acknowledges them. */
const MARK_READ_DELAY_MS = 250;

const ui = {
  appView: $('#app-view'),
  conn: $('#conn'),
  connDetail: $('#conn-detail'),
  connRetry: $('#conn-retry'),
  me: $('#me'),
  meName: $('#me-name'),
  meAvatar: $('#me-avatar'),
  presence: $('#presence'),
  presenceList: $('#presence-list'),
  filters: $('#filters'),
  search: $('#search'),
  list: $('#session-list'),
  listEmpty: $('#list-empty'),
  listError: $('#list-error'),
  counts: { open: $('#count-open'), closed: $('#count-closed'), all: $('#count-all') },
  threadEmpty: $('#thread-empty'),
  threadWrap: $('#thread-wrap'),
  back: $('#back'),
  threadAvatar: $('#thread-avatar'),
  threadPlayer: $('#thread-player'),
  threadStatus: $('#thread-status'),
  threadAssignee: $('#thread-assignee'),
  threadId: $('#thread-id'),
  assign: $('#assign'),
  close: $('#close'),
  actionError: $('#action-error'),
  scroller: $('#thread-scroller'),
  threadLoading: $('#thread-loading'),
  threadList: $('#thread-list'),
  typing: $('#typing'),
  closedNote: $('#closed-note'),
  composer: $('#composer'),
  replyInput: $('#reply-input'),
  replySend: $('#reply-send'),
};

const state = {
  me: null,
  myName: null,
  sessions: new Map(), // id -> session object + lastMessage + unreadCount
  filter: 'open',
  search: '',
  thread: null, // {sessionId, lastCursor, loaded, synced, lastMarked, retry}
  outbox: new Map(), // clientMessageId -> pending message
  inflight: [], // clientMessageIds sent on this connection, awaiting message_sent
  presence: new Map(), // greId -> staff_presence frame
  refreshTimer: null,
  listRetry: null,
  closeArmed: null,
  errorTimer: null,
};

// The GRE desk (lib/desk.js): canned responses, transfers, internal notes, desk settings. Built
// before the composer is bound, so its picker sees Enter first.
const desk = new Desk({
  token: () => auth.token,
  me: () => ({ id: state.me, name: state.myName }),
  session: (id) => state.sessions.get(id),
  thread: () => (state.thread ? state.thread.sessionId : null),
  presence: () => state.presence,
  replyInput: ui.replyInput,
  anchor: $('.thread-head'),
  topbar: $('#sign-out'),
  onError: (text) => showActionError(text),
});

const view = new ThreadView(ui.scroller, ui.threadList, {
  viewer: 'gre',
  nameOf: (m) => {
    if (m.sender === 'player') return 'Player ' + m.playerId;
    if (m.sender === 'system') return 'System';
    const name = m.senderName || m.senderId || 'GRE';
    return m.senderId && m.senderId === state.me ? name + ' (you)' : name;
  },
  onRetry: (p) => {
    p.failed = false;
    p.error = null;
    view.updatePending(p.clientMessageId, { failed: false, error: null });
    sendPending(p);
  },
  renderAttachment: (m) => attachmentNode(() => auth.token, m),
});

const typingSender = new TypingSender((sessionId, isTyping) => {
  if (auth.relay) auth.relay.send({ type: 'typing', sessionId, isTyping });
});
const typing = new TypingTracker((sessionId) => {
  if (state.thread && state.thread.sessionId === sessionId) renderTyping();
  renderList();
});

// ---- sign in / out -----------------------------------------------------------------------

/** The token, the relay connection of this sign-in, sign-in and sign-out (lib/signin.js). */
const auth = bindSignIn({
  storageKey: 'gre-console-token',
  notATokenMessage: 'That does not look like a token (a JWT has three parts separated by dots).',
  expiredMessage: 'This token has expired. Ask for a new one.',
  relay: { onState: setConnState, onAuthenticated, onFrame },
  onSignIn: (token, claims) => {
    state.myName = (claims.user_metadata && claims.user_metadata.name) || null;
    state.me = claims.sub || null;
    renderMe();
    ui.me.hidden = false;
  },
  onSignOut: forget,
  onShowSignIn: () => {
    ui.me.hidden = true;
    ui.presence.hidden = true;
    setConnState('disconnected', '');
  },
});

/** The Reports view (reports.js): its own tab, fed by REST and the analytics_live frame. */
const reports = new Reports(() => auth.token);

function boot() {
  reports.bind();
  bindList();
  bindThread();
  auth.start();
}

/** Signed out: nothing of this staff member stays on the page. */
function forget() {
  state.me = null;
  state.sessions.clear();
  state.thread = null;
  state.outbox.clear();
  state.inflight = [];
  state.presence.clear();
  typing.clear();
  view.clear();
  desk.reset();
  renderList();
  renderThread();
  renderPresence();
  document.title = 'GRE Console';
}

const showConnState = bindConnectionStatus(ui.conn, ui.connDetail, ui.connRetry, () => auth.relay);
function setConnState(connState, detail) {
  showConnState(connState, detail);
  // Presence is only known while connected; the relay resends it after the reconnect.
  ui.presence.classList.toggle('is-stale', connState !== 'connected');
}

function renderMe() {
  const label = state.myName ? state.myName + ' · ' + (state.me || '') : state.me || '';
  ui.meName.textContent = label;
  ui.meAvatar.textContent = initials(state.myName || state.me || '?');
}

function initials(name) {
  const parts = String(name).trim().split(/[\s._-]+/).filter(Boolean);
  if (!parts.length) return '?';
  const letters = parts.length === 1 ? parts[0].slice(0, 2) : parts[0][0] + parts[1][0];
  return letters.toUpperCase();
}

// ---- the connection ----------------------------------------------------------------------

function onAuthenticated(frame) {
  if (frame.role !== 'gre_staff') {
    auth.signOut('This is a player token. The console is for GRE staff; players use /chat.');
    return;
  }
  state.me = frame.staffId;
  renderMe();
  state.inflight = [];
  state.presence.clear(); // the relay now sends who is online
  renderPresence();
  loadSessions();
  desk.load();
  reports.load(); // when the Reports view is shown: figures missed while disconnected
  const t = state.thread;
  if (t) {
    t.lastMarked = null;
    t.synced = false;
    if (t.loaded) subscribeThread();
    else loadThread();
  }
  for (const p of state.outbox.values()) if (!p.failed) sendPending(p);
}

function onFrame(f) {
  switch (f.type) {
    case 'chat_message':
      if (f.message) onMessage(f.message, true);
      break;
    case 'message_sent':
      onMessageSent(f);
      break;
    case 'message_updated':
      if (f.message) onMessageUpdated(f.message);
      break;
    case 'messages_updated':
      refreshRange(f);
      break;
    case 'session_updated':
      if (f.session) onSession(f.session);
      break;
    case 'subscribed': {
      const t = state.thread;
      if (t && f.sessionId === t.sessionId) {
        t.lastCursor = maxCursor(t.lastCursor, f.cursor);
        t.synced = true;
        markReadIfViewing();
      }
      break;
    }
    case 'typing':
      if (!(f.sender === 'gre' && f.senderId === state.me)) typing.update(f);
      break;
    case 'messages_read':
      onMessagesRead(f);
      break;
    case 'analytics_live':
      reports.onLive(f);
      break;
    case 'staff_presence':
      if (f.greId) {
        state.presence.set(f.greId, f);
        renderPresence();
        desk.onFrame(f);
      }
      break;
    case 'error':
      onError(f);
      break;
    default:
      desk.onFrame(f); // the desk's events; gre_presence, unsubscribed: nothing to show
  }
}

function onMessage(m, advance) {
  let s = state.sessions.get(m.sessionId);
  if (!s) {
    // A session we have not heard of: show it now, fetch its details soon.
    s = {
      id: m.sessionId,
      playerId: m.playerId,
      status: 'waiting',
      assignedGreId: null,
      createdAt: m.createdAt,
      updatedAt: m.createdAt,
      closedAt: null,
      lastMessage: null,
      unreadCount: 0,
    };
    state.sessions.set(s.id, s);
    scheduleRefresh();
  }
  const newer = !s.lastMessage || (s.lastMessage.id !== m.id && compareCursor(m.cursor, s.lastMessage.cursor) > 0);
  if (newer) {
    s.lastMessage = m;
    if (m.sender === 'player' && m.status !== 'read' && !isViewing(m.sessionId)) s.unreadCount = (s.unreadCount || 0) + 1;
  } else if (s.lastMessage && s.lastMessage.id === m.id) {
    s.lastMessage = m;
  }
  typing.spoke(m.sessionId, m.sender, m.senderId);
  if (m.clientMessageId && state.outbox.has(m.clientMessageId) && m.sender === 'gre') {
    state.outbox.delete(m.clientMessageId);
  }
  const t = state.thread;
  if (t && t.sessionId === m.sessionId) {
    view.upsert(m);
    // Advance only once this connection follows the thread exactly (after `subscribed`): a live
    // frame can overtake the backfill of a resubscribe.
    if (advance && t.synced) t.lastCursor = maxCursor(t.lastCursor, m.cursor);
    markReadIfViewing();
  }
  renderList();
}

function onMessageSent(f) {
  const cid = f.clientMessageId;
  if (cid) {
    state.inflight = state.inflight.filter((c) => c !== cid);
    state.outbox.delete(cid);
  }
  // The acknowledgement may come before the chat_message: show it, but do not move the cursor.
  if (f.message) onMessage(f.message, false);
}

function onMessageUpdated(m) {
  const s = state.sessions.get(m.sessionId);
  if (s && s.lastMessage && s.lastMessage.id === m.id) s.lastMessage = m;
  const t = state.thread;
  if (t && t.sessionId === m.sessionId && view.has(m.id)) view.upsert(m);
  renderList();
}

/**
 * Many messages of a session changed at once (one frame for the lot): the open thread reads them
 * again; the list's last message and unread count come back with the session list's next load.
 */
async function refreshRange(f) {
  const t = state.thread;
  const token = auth.token;
  if (!token || !t || t.sessionId !== f.sessionId) return;
  try {
    const path = '/api/gre-admin/messages/' + encodeURIComponent(f.sessionId);
    const changed = await fetchChangedRange(token, path, f.fromCursor, f.toCursor);
    if (auth.token !== token) return;
    for (const m of changed) onMessageUpdated(m);
  } catch (_) {
    /* statuses stay as they were until the next change or reload: never wrong messages */
  }
}

function onMessagesRead(f) {
  const s = state.sessions.get(f.sessionId);
  if (!s || f.reader !== 'gre') return;
  const count = typeof f.count === 'number' ? f.count : Array.isArray(f.messageIds) ? f.messageIds.length : null;
  s.unreadCount = count === null ? 0 : Math.max(0, (s.unreadCount || 0) - count);
  renderList();
}

function onSession(session) {
  const old = state.sessions.get(session.id);
  const merged = Object.assign({ lastMessage: null, unreadCount: 0 }, old || {}, session);
  if (old) {
    merged.lastMessage = old.lastMessage;
    merged.unreadCount = old.unreadCount;
  }
  state.sessions.set(session.id, merged);
  renderList();
  if (state.thread && state.thread.sessionId === session.id) renderThreadHead();
}

/** Errors carry no request id: a send's error is matched to the oldest send in flight. */
function onError(f) {
  const sendErrors = ['invalid_message', 'session_closed', 'rate_limited', 'chat_disabled', 'forbidden'];
  if (sendErrors.includes(f.code) && state.inflight.length) {
    const cid = state.inflight.shift();
    const p = state.outbox.get(cid);
    if (p) {
      p.failed = true;
      p.error = humanError(f);
      if (state.thread && state.thread.sessionId === p.sessionId) view.updatePending(cid, { failed: true, error: p.error });
    }
    return;
  }
  if (f.code === 'unavailable') {
    // The database was out of reach: retry what may have failed (sends are idempotent).
    setTimeout(() => {
      if (!auth.relay || !auth.relay.connected) return;
      const retry = state.inflight.slice();
      state.inflight = [];
      for (const cid of retry) {
        const p = state.outbox.get(cid);
        if (p && !p.failed) sendPending(p);
      }
      if (state.thread && state.thread.loaded) subscribeThread();
    }, 1500);
  }
  showActionError(humanError(f));
}

function humanError(f) {
  const known = {
    invalid_message: 'the message was not accepted',
    session_closed: 'this conversation is closed',
    rate_limited: 'too fast, try again in a moment',
    unavailable: 'the database is unavailable, retrying',
    forbidden: 'not allowed',
    not_found: 'no such conversation',
  };
  return known[f.code] || f.message || f.code || 'error';
}

function showActionError(text) {
  ui.actionError.textContent = text;
  ui.actionError.hidden = !text;
  if (state.errorTimer) clearTimeout(state.errorTimer);
  if (text) state.errorTimer = setTimeout(() => (ui.actionError.hidden = true), 6000);
}

// ---- the session list --------------------------------------------------------------------

async function loadSessions() {
  const token = auth.token;
  if (state.listRetry) clearTimeout(state.listRetry);
  state.listRetry = null;
  let body;
  try {
    body = await api(token, 'GET', '/api/gre-admin/sessions?limit=500');
  } catch (e) {
    if (auth.token !== token) return;
    if (e.status === 401) {
      auth.signOut('Your token is no longer accepted (' + e.message + ').');
      return;
    }
    ui.listError.textContent = 'Could not load conversations: ' + e.message + '. Retrying…';
    ui.listError.hidden = false;
    state.listRetry = setTimeout(loadSessions, 4000);
    return;
  }
  if (auth.token !== token) return;
  ui.listError.hidden = true;
  for (const s of body.sessions || []) {
    const old = state.sessions.get(s.id);
    const merged = Object.assign({}, s);
    merged.unreadCount = typeof s.unreadCount === 'number' ? s.unreadCount : Number(s.unreadCount) || 0;
    if (old) {
      // What arrived live while the request was on its way may be newer than the snapshot.
      if (old.lastMessage && (!s.lastMessage || compareCursor(old.lastMessage.cursor, s.lastMessage.cursor) > 0)) {
        merged.lastMessage = old.lastMessage;
        merged.unreadCount = Math.max(old.unreadCount || 0, merged.unreadCount);
      }
      if (old.updatedAt && s.updatedAt && old.updatedAt > s.updatedAt) {
        merged.status = old.status;
        merged.assignedGreId = old.assignedGreId;
        merged.updatedAt = old.updatedAt;
        merged.closedAt = old.closedAt;
      }
    }
    state.sessions.set(s.id, merged);
  }
  if (isViewing(state.thread && state.thread.sessionId)) {
    const s = state.sessions.get(state.thread.sessionId);
    if (s) s.unreadCount = 0;
  }
  renderList();
  if (state.thread) renderThreadHead();
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    if (auth.relay && auth.relay.connected) loadSessions();
  }, 800);
}

function activity(s) {
  const t = [s.updatedAt, s.createdAt, s.lastMessage && s.lastMessage.createdAt]
    .map((x) => (parseTime(x) || new Date(0)).getTime());
  return Math.max.apply(null, t);
}

function matchesFilter(s, filter) {
  if (filter === 'open') return s.status !== 'closed';
  if (filter === 'closed') return s.status === 'closed';
  return true;
}

function renderList() {
  const all = Array.from(state.sessions.values());
  ui.counts.open.textContent = String(all.filter((s) => matchesFilter(s, 'open')).length);
  ui.counts.closed.textContent = String(all.filter((s) => matchesFilter(s, 'closed')).length);
  ui.counts.all.textContent = String(all.length);
  const q = state.search.trim().toLowerCase();
  const shown = all
    .filter((s) => matchesFilter(s, state.filter))
    .filter((s) => !q || String(s.playerId).includes(q) || String(s.id).startsWith(q))
    .sort((a, b) => activity(b) - activity(a));
  // Rows are rebuilt only when what they show changed, so a row under the pointer keeps its
  // identity (a click is not lost to a re-render caused by, say, someone typing elsewhere).
  const keep = new Map();
  const rows = shown.map((s) => {
    const key = rowKey(s);
    const cached = rowCache.get(s.id);
    const node = cached && cached.key === key ? cached.node : sessionItem(s);
    keep.set(s.id, { key, node });
    return node;
  });
  rowCache = keep;
  ui.list.replaceChildren(...rows);
  ui.listEmpty.hidden = shown.length > 0 || !auth.token;
  const unread = all.filter((s) => s.status !== 'closed').reduce((n, s) => n + (s.unreadCount || 0), 0);
  document.title = (unread ? '(' + unread + ') ' : '') + 'GRE Console';
}

let rowCache = new Map(); // session id -> {key, node}

function rowKey(s) {
  const last = s.lastMessage;
  return JSON.stringify([
    s.status,
    s.assignedGreId,
    s.playerId,
    s.updatedAt,
    last ? [last.id, last.message, last.createdAt, last.senderName] : null,
    s.unreadCount || 0,
    !!(state.thread && state.thread.sessionId === s.id),
    typing.list(s.id).some((t) => t.sender === 'player'),
    state.me,
    new Date().toDateString(),
  ]);
}

function sessionItem(s) {
  const selected = state.thread && state.thread.sessionId === s.id;
  const typists = typing.list(s.id).filter((t) => t.sender === 'player');
  const last = s.lastMessage;
  let preview;
  if (typists.length) preview = h('span', { class: 'si-typing' }, 'typing…');
  else if (last) {
    // The desk's own lines (docs/protocol.md, systemKind) are labelled, so a queued chat whose
    // last row is the auto-reply does not read as if a GRE had answered.
    const desk = { auto_reply: 'Auto-reply: ', after_hours: 'Out of hours: ', transfer: '' }[last.systemKind];
    const who = last.sender === 'gre'
      ? (last.senderId === state.me ? 'You: ' : (last.senderName || last.senderId || 'GRE') + ': ')
      : (desk || '');
    preview = [who ? h('span', { class: 'si-who' }, who) : null, last.message];
  } else preview = h('span', { class: 'muted' }, 'No messages yet');
  const assignee = s.assignedGreId
    ? h('span', { class: 'si-assignee' + (s.assignedGreId === state.me ? ' si-assignee--me' : '') }, s.assignedGreId === state.me ? 'You' : s.assignedGreId)
    : s.status === 'closed'
    ? null
    : h('span', { class: 'si-assignee si-assignee--none' }, 'Unassigned');
  const unread = s.unreadCount || 0;
  const item = h(
    'li',
    {
      class: 'session-item' + (selected ? ' is-selected' : '') + (unread ? ' has-unread' : '') + ' status-' + s.status,
      'data-testid': 'session-item',
      'data-session-id': s.id,
      'data-status': s.status,
      'data-unread': String(unread),
      role: 'button',
      tabindex: '0',
      'aria-current': selected ? 'true' : null,
    },
    h('div', { class: 'avatar avatar--player', 'aria-hidden': 'true' }, String(s.playerId).slice(-3)),
    h(
      'div',
      { class: 'si-main' },
      h(
        'div',
        { class: 'si-top' },
        h('span', { class: 'si-name', 'data-testid': 'session-player' }, 'Player ' + s.playerId),
        h('time', { class: 'si-time', datetime: last ? last.createdAt : s.updatedAt }, shortWhen(last ? last.createdAt : s.updatedAt))
      ),
      h('div', { class: 'si-preview', 'data-testid': 'session-preview' }, preview),
      h(
        'div',
        { class: 'si-tags' },
        h('span', { class: 'badge badge--' + s.status, 'data-testid': 'session-status' }, s.status),
        assignee,
        unread ? h('span', { class: 'unread', 'data-testid': 'unread-count', 'aria-label': unread + ' unread' }, String(unread)) : null
      )
    )
  );
  return item;
}

function bindList() {
  ui.list.addEventListener('click', (ev) => {
    const item = ev.target.closest('[data-testid="session-item"]');
    if (item) select(item.getAttribute('data-session-id'));
  });
  ui.list.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' && ev.key !== ' ') return;
    const item = ev.target.closest('[data-testid="session-item"]');
    if (item) {
      ev.preventDefault();
      select(item.getAttribute('data-session-id'));
    }
  });
  ui.filters.addEventListener('click', (ev) => {
    const tab = ev.target.closest('[data-filter]');
    if (!tab) return;
    state.filter = tab.getAttribute('data-filter');
    for (const t of ui.filters.querySelectorAll('[data-filter]')) {
      const on = t === tab;
      t.classList.toggle('is-active', on);
      t.setAttribute('aria-selected', on ? 'true' : 'false');
    }
    renderList();
  });
  ui.search.addEventListener('input', () => {
    state.search = ui.search.value;
    renderList();
  });
}

function renderPresence() {
  const online = Array.from(state.presence.values())
    .filter((p) => p.isOnline)
    .sort((a, b) => (a.greId === state.me ? -1 : b.greId === state.me ? 1 : a.greId < b.greId ? -1 : 1));
  ui.presenceList.replaceChildren(
    ...online.map((p) =>
      h(
        'li',
        { class: 'presence-chip presence--' + (p.status || 'online'), 'data-gre-id': p.greId, title: p.greId + ' · ' + (p.status || 'online') },
        h('span', { class: 'presence-dot', 'aria-hidden': 'true' }),
        p.greId === state.me ? p.greId + ' (you)' : p.greId
      )
    )
  );
  ui.presence.hidden = !auth.token || online.length === 0;
}

// ---- the thread --------------------------------------------------------------------------

function isViewing(sessionId) {
  const t = state.thread;
  return !!(t && sessionId && t.sessionId === sessionId && t.loaded && document.visibilityState === 'visible');
}

function select(sessionId) {
  if (!sessionId) return;
  const previous = state.thread;
  if (previous && previous.sessionId === sessionId) {
    ui.appView.classList.add('show-thread');
    ui.replyInput.focus();
    return;
  }
  typingSender.stop();
  if (previous && auth.relay) auth.relay.send({ type: 'unsubscribe', sessionId: previous.sessionId });
  if (previous && previous.retry) clearTimeout(previous.retry);
  state.thread = { sessionId, lastCursor: null, loaded: false, synced: false, lastMarked: null, retry: null };
  view.clear();
  for (const p of state.outbox.values()) if (p.sessionId === sessionId) view.addPending(p);
  disarmClose();
  showActionError('');
  ui.appView.classList.add('show-thread');
  renderThread();
  renderList();
  loadThread();
  desk.showThread(sessionId);
  ui.replyInput.focus();
}

async function loadThread() {
  const t = state.thread;
  if (!t || !auth.token) return;
  if (t.retry) clearTimeout(t.retry);
  t.retry = null;
  ui.threadLoading.textContent = 'Loading conversation…';
  ui.threadLoading.hidden = false;
  let page;
  try {
    page = await fetchAllPages(auth.token, '/api/gre-admin/messages/' + encodeURIComponent(t.sessionId));
  } catch (e) {
    if (state.thread !== t) return;
    ui.threadLoading.textContent = 'Could not load this conversation: ' + e.message + '. Retrying…';
    t.retry = setTimeout(loadThread, 3000);
    return;
  }
  if (state.thread !== t) return;
  for (const m of page.messages) view.upsert(m);
  t.lastCursor = page.cursor || '0';
  t.loaded = true;
  ui.threadLoading.hidden = true;
  subscribeThread();
  markReadIfViewing();
}

/** Follows the open thread exactly: everything after the last cursor seen, then live. */
function subscribeThread() {
  const t = state.thread;
  if (!t || !t.loaded || !auth.relay) return;
  auth.relay.send({ type: 'subscribe', sessionId: t.sessionId, since: t.lastCursor || '0' });
}

/** One mark_read for however many messages arrive together (see coalesce). */
const markReadIfViewing = coalesce(sendMarkRead, MARK_READ_DELAY_MS);

function sendMarkRead() {
  const t = state.thread;
  if (!t || !isViewing(t.sessionId) || !auth.relay || !auth.relay.connected) return;
  const s = state.sessions.get(t.sessionId);
  if (s && s.unreadCount) {
    s.unreadCount = 0;
    renderList();
  }
  const last = view.lastMessage((m) => m.sender === 'player');
  if (!last || last.status === 'read' || t.lastMarked === last.id) return;
  t.lastMarked = last.id;
  auth.relay.send({ type: 'mark_read', sessionId: t.sessionId, upTo: last.id });
}

function renderThread() {
  const t = state.thread;
  ui.threadEmpty.hidden = !!t;
  ui.threadWrap.hidden = !t;
  if (!t) {
    ui.appView.classList.remove('show-thread');
    return;
  }
  renderThreadHead();
  renderTyping();
}

function renderThreadHead() {
  const t = state.thread;
  if (!t) return;
  const s = state.sessions.get(t.sessionId) || { id: t.sessionId, status: 'unknown', playerId: '?' };
  ui.threadPlayer.textContent = 'Player ' + s.playerId;
  ui.threadAvatar.textContent = String(s.playerId).slice(-3);
  ui.threadStatus.textContent = s.status;
  ui.threadStatus.className = 'badge badge--' + s.status;
  ui.threadAssignee.textContent = s.assignedGreId
    ? 'Assigned to ' + (s.assignedGreId === state.me ? 'you' : s.assignedGreId)
    : 'Unassigned';
  ui.threadId.textContent = 'Session ' + String(s.id).slice(0, 8);
  ui.threadId.setAttribute('title', String(s.id));
  const closed = s.status === 'closed';
  ui.assign.hidden = closed;
  ui.close.hidden = closed;
  ui.assign.textContent = s.assignedGreId && s.assignedGreId === state.me ? 'Unassign' : 'Assign to me';
  ui.closedNote.hidden = !closed;
  ui.composer.hidden = closed;
  desk.renderTransferTargets();
}

function renderTyping() {
  const t = state.thread;
  const typists = t ? typing.list(t.sessionId) : [];
  if (!typists.length) {
    ui.typing.replaceChildren();
    ui.typing.classList.remove('is-active');
    return;
  }
  const s = state.sessions.get(t.sessionId);
  const names = typists.map((x) => (x.sender === 'player' ? 'Player ' + (s ? s.playerId : x.senderId) : x.senderId));
  ui.typing.replaceChildren(
    h('span', { class: 'typing-dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
    names.join(', ') + (names.length > 1 ? ' are typing…' : ' is typing…')
  );
  ui.typing.classList.add('is-active');
}

function bindThread() {
  bindComposer(ui.replyInput, ui.replySend, sendReply, () => {
    if (state.thread) typingSender.input(state.thread.sessionId);
  });
  ui.composer.addEventListener('submit', (ev) => ev.preventDefault());
  // Photos and PDFs: the button, drop on the thread, paste in the reply box; sent once uploaded.
  bindAttachments({
    composer: ui.composer,
    sendButton: ui.replySend,
    textarea: ui.replyInput,
    dropTarget: ui.scroller.parentNode,
    uploadPath: '/api/gre-admin/attachments',
    token: () => auth.token,
    canAttach: () => !!state.thread,
    onUploaded: (upload) => sendReply('', upload),
    onError: showActionError,
  });
  ui.back.addEventListener('click', () => ui.appView.classList.remove('show-thread'));
  ui.assign.addEventListener('click', assign);
  ui.close.addEventListener('click', closeSession);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') markReadIfViewing();
    else typingSender.stop();
  });
}

/** Sends `text`, or with `upload` (lib/attachments.js) that file, with `text` as its caption. */
function sendReply(text, upload) {
  const t = state.thread;
  if (!t) return false;
  const s = state.sessions.get(t.sessionId);
  if (s && s.status === 'closed') {
    showActionError('This conversation is closed.');
    return false;
  }
  const tooLong = textTooLong(text);
  if (tooLong) {
    showActionError(tooLong);
    return false;
  }
  typingSender.stop();
  const p = pendingMessage('gre', t.sessionId, text, upload);
  state.outbox.set(p.clientMessageId, p);
  view.addPending(p);
  sendPending(p);
  return true;
}

/** Sends now if connected; otherwise the message waits and goes out after the reconnect. */
function sendPending(p) {
  if (!auth.relay) return;
  const frame = {
    type: 'send_message',
    sessionId: p.sessionId,
    message: p.text,
    clientMessageId: p.clientMessageId,
  };
  if (p.attachmentId) frame.attachmentId = p.attachmentId;
  const sent = auth.relay.send(frame);
  if (sent && !state.inflight.includes(p.clientMessageId)) state.inflight.push(p.clientMessageId);
  if (p.queued !== !sent && state.thread && state.thread.sessionId === p.sessionId) {
    view.updatePending(p.clientMessageId, { queued: !sent });
  }
  p.queued = !sent;
}

async function assign() {
  const t = state.thread;
  const s = t && state.sessions.get(t.sessionId);
  if (!s || !state.me) return;
  const mine = s.assignedGreId === state.me;
  ui.assign.disabled = true;
  try {
    // The endpoint requires `status`: send the current one unchanged.
    const body = await api(auth.token, 'PUT', '/api/gre-admin/session/' + encodeURIComponent(s.id) + '/status', {
      status: s.status,
      assignedGreId: mine ? null : state.me,
    });
    if (body && body.session) onSession(body.session);
  } catch (e) {
    showActionError('Could not assign: ' + e.message);
  } finally {
    ui.assign.disabled = false;
  }
}

function disarmClose() {
  if (state.closeArmed) clearTimeout(state.closeArmed);
  state.closeArmed = null;
  ui.close.textContent = 'Close';
  ui.close.classList.remove('is-armed');
}

async function closeSession() {
  const t = state.thread;
  const s = t && state.sessions.get(t.sessionId);
  if (!s) return;
  if (!state.closeArmed) {
    // Two clicks: the first arms the button for a few seconds.
    ui.close.textContent = 'Confirm close';
    ui.close.classList.add('is-armed');
    state.closeArmed = setTimeout(disarmClose, 4000);
    return;
  }
  disarmClose();
  ui.close.disabled = true;
  try {
    const body = await api(auth.token, 'POST', '/api/gre-chat/close-session/' + encodeURIComponent(s.playerId));
    if (body && body.session) onSession(body.session);
  } catch (e) {
    showActionError('Could not close: ' + e.message);
  } finally {
    ui.close.disabled = false;
  }
}

boot();
