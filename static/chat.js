// /chat: a player's chat with the GRE team (a demo of what the player portal does). History from
// REST, then live; after every reconnect, `subscribe` with the last cursor so nothing is missed.
// See docs/protocol.md ("What a client should do").

import { fetchAllPages, fetchChangedRange } from './lib/api.js';
import { bindComposer, pendingMessage, textTooLong } from './lib/composer.js';
import { attachmentNode, bindAttachments } from './lib/attachments.js';
import { $, h } from './lib/dom.js';
import { maxCursor } from './lib/ids.js';
import { bindConnectionStatus } from './lib/relay.js';
import { bindSignIn } from './lib/signin.js';
import { ThreadView } from './lib/thread.js';
import { coalesce, parseTime } from './lib/time.js';
import { TypingSender, TypingTracker } from './lib/typing.js';

/** How long arriving messages are gathered before one mark_read acknowledges them. */
const MARK_READ_DELAY_MS = 250;

const ui = {
  conn: $('#conn'),
  connDetail: $('#conn-detail'),
  connRetry: $('#conn-retry'),
  greOnline: $('#gre-online'),
  greOnlineText: $('#gre-online-text'),
  actionError: $('#action-error'),
  scroller: $('#thread-scroller'),
  threadLoading: $('#thread-loading'),
  welcome: $('#welcome'),
  threadList: $('#thread-list'),
  typing: $('#typing'),
  replyInput: $('#reply-input'),
  replySend: $('#reply-send'),
  composer: $('#composer'),
};

const state = {
  playerId: null,
  // sessionId -> {id, status, createdAt, lastCursor, synced}
  sessions: new Map(),
  openSessionId: null,
  historyLoaded: false,
  historyRetry: null,
  outbox: new Map(),
  inflight: [],
  lastMarked: null,
  errorTimer: null,
};

const view = new ThreadView(ui.scroller, ui.threadList, {
  viewer: 'player',
  nameOf: (m) => {
    if (m.sender === 'player') return 'You';
    if (m.sender === 'system') return 'Club';
    return m.senderName || 'Guest Relations';
  },
  sessionRank: (sid) => {
    const s = state.sessions.get(sid);
    const d = s && parseTime(s.createdAt);
    return d ? d.getTime() : Number.MAX_SAFE_INTEGER;
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
const typing = new TypingTracker(() => renderTyping());

// ---- sign in / out -----------------------------------------------------------------------

/** The token, the relay connection of this sign-in, sign-in and sign-out (lib/signin.js). */
const auth = bindSignIn({
  storageKey: 'gre-chat-token',
  notATokenMessage: 'That does not look like a token.',
  expiredMessage: 'This token has expired. Sign in to the portal again.',
  relay: { onState: setConnState, onAuthenticated, onFrame },
  onSignIn: () => {
    ui.threadLoading.hidden = false;
    ui.replyInput.focus();
  },
  onSignOut: forget,
});

function boot() {
  bindComposer(ui.replyInput, ui.replySend, send, () => {
    const s = state.openSessionId && state.sessions.get(state.openSessionId);
    if (s && s.status !== 'closed') typingSender.input(s.id);
  });
  ui.composer.addEventListener('submit', (ev) => ev.preventDefault());
  // Photos and PDFs: the button, drop on the thread, paste in the reply box; sent once uploaded.
  bindAttachments({
    composer: ui.composer,
    sendButton: ui.replySend,
    textarea: ui.replyInput,
    dropTarget: ui.scroller.parentNode,
    uploadPath: '/api/gre-chat/attachments',
    token: () => auth.token,
    canAttach: () => !!auth.token,
    onUploaded: (upload) => send('', upload),
    onError: showActionError,
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') markRead();
    else typingSender.stop();
  });
  auth.start();
}

/** Signed out: nothing of this player stays on the page. */
function forget() {
  state.playerId = null;
  state.sessions.clear();
  state.openSessionId = null;
  state.historyLoaded = false;
  if (state.historyRetry) clearTimeout(state.historyRetry);
  state.outbox.clear();
  state.inflight = [];
  typing.clear();
  view.clear();
}

const showConnState = bindConnectionStatus(ui.conn, ui.connDetail, ui.connRetry, () => auth.relay);
function setConnState(connState, detail) {
  showConnState(connState, detail);
  if (connState !== 'connected') {
    // Presence is only known while connected; the relay resends it after the reconnect.
    ui.greOnline.setAttribute('data-online', 'unknown');
    ui.greOnline.classList.remove('is-online');
    ui.greOnlineText.textContent = 'Waiting for the connection…';
  }
}

// ---- the connection ----------------------------------------------------------------------

function onAuthenticated(f) {
  if (f.role !== 'player') {
    auth.signOut('This is a staff token. GRE staff use the console at /console.');
    return;
  }
  state.playerId = f.playerId;
  state.inflight = [];
  state.lastMarked = null;
  for (const s of state.sessions.values()) s.synced = false;
  if (f.sessionId) {
    state.openSessionId = f.sessionId;
    const s = ensureSession(f.sessionId);
    if (s.status === 'closed' || !s.status) s.status = 'open';
  }
  if (!state.historyLoaded) {
    loadHistory(f.sessionId);
  } else {
    // Resume: everything after the last cursor of each session we show, then live.
    for (const s of state.sessions.values()) subscribe(s);
  }
  for (const p of state.outbox.values()) if (!p.failed) sendPending(p);
  markRead();
}

async function loadHistory(openSessionId) {
  const token = auth.token;
  if (state.historyRetry) clearTimeout(state.historyRetry);
  state.historyRetry = null;
  let page;
  try {
    page = await fetchAllPages(token, '/api/gre-chat/messages/' + encodeURIComponent(state.playerId));
  } catch (e) {
    if (auth.token !== token) return;
    if (e.status === 401) {
      auth.signOut('Your token is no longer accepted (' + e.message + ').');
      return;
    }
    showActionError('Could not load your messages: ' + e.message + '. Retrying…');
    state.historyRetry = setTimeout(() => loadHistory(openSessionId), 3000);
    return;
  }
  if (auth.token !== token) return;
  state.historyLoaded = true;
  ui.threadLoading.hidden = true;
  if (page.sessionId) {
    const s = ensureSession(page.sessionId);
    if (page.messages.length && !s.createdAt) s.createdAt = page.messages[0].createdAt;
    s.lastCursor = maxCursor(s.lastCursor, page.cursor || '0');
    for (const m of page.messages) view.upsert(m);
    if (page.sessionId !== state.openSessionId && !s.status) s.status = 'closed';
  }
  for (const s of state.sessions.values()) subscribe(s);
  renderWelcome();
  updateNotes();
  markRead();
}

function ensureSession(id) {
  let s = state.sessions.get(id);
  if (!s) {
    s = { id, status: null, createdAt: null, lastCursor: null, synced: false };
    state.sessions.set(id, s);
  }
  return s;
}

function subscribe(s) {
  if (!auth.relay) return;
  auth.relay.send({ type: 'subscribe', sessionId: s.id, since: s.lastCursor || '0' });
}

function onFrame(f) {
  switch (f.type) {
    case 'chat_message':
      if (f.message) onMessage(f.message, true);
      break;
    case 'message_sent': {
      const cid = f.clientMessageId;
      if (cid) {
        state.inflight = state.inflight.filter((c) => c !== cid);
        state.outbox.delete(cid);
      }
      if (f.message) onMessage(f.message, false);
      break;
    }
    case 'message_updated':
      if (f.message && view.has(f.message.id)) view.upsert(f.message);
      break;
    case 'messages_updated':
      refreshRange(f);
      break;
    case 'session_updated':
      if (f.session) onSession(f.session);
      break;
    case 'subscribed': {
      const s = state.sessions.get(f.sessionId);
      if (s) {
        s.lastCursor = maxCursor(s.lastCursor, f.cursor);
        s.synced = true;
      }
      markRead();
      break;
    }
    case 'typing':
      if (f.sender !== 'player') typing.update(f);
      break;
    case 'gre_presence':
      renderGreOnline(!!f.anyOnline, f.onlineCount);
      break;
    case 'error':
      onError(f);
      break;
    default:
      break; // messages_read (the rows come as message_updated), unsubscribed
  }
}

/** Many messages changed at once (one frame for the lot): read them again, show the new states. */
async function refreshRange(f) {
  const token = auth.token;
  if (!token || !state.playerId) return;
  try {
    const path = '/api/gre-chat/messages/' + encodeURIComponent(state.playerId);
    const changed = await fetchChangedRange(token, path, f.fromCursor, f.toCursor);
    if (auth.token !== token) return;
    for (const m of changed) if (m.sessionId === f.sessionId && view.has(m.id)) view.upsert(m);
  } catch (_) {
    /* statuses stay as they were until the next change or reload: never wrong messages */
  }
}

function onMessage(m, advance) {
  let s = state.sessions.get(m.sessionId);
  if (!s) {
    // A session this page has not seen (opened by this message, or elsewhere): follow it from
    // its beginning, exactly.
    s = ensureSession(m.sessionId);
    s.createdAt = s.createdAt || m.createdAt;
    if (state.historyLoaded) subscribe(s);
  }
  if (!s.createdAt) s.createdAt = m.createdAt;
  if (advance && s.synced) s.lastCursor = maxCursor(s.lastCursor, m.cursor);
  if (m.clientMessageId && m.sender === 'player' && state.outbox.has(m.clientMessageId)) {
    state.outbox.delete(m.clientMessageId);
  }
  typing.spoke(m.sessionId, m.sender, m.senderId);
  view.upsert(m);
  renderWelcome();
  updateNotes();
  markRead();
}

function onSession(session) {
  const s = ensureSession(session.id);
  const isNew = !s.createdAt && state.historyLoaded && !s.synced;
  s.status = session.status;
  s.createdAt = session.createdAt || s.createdAt;
  if (session.status !== 'closed') state.openSessionId = session.id;
  if (isNew && !view.lastMessage((m) => m.sessionId === session.id)) subscribe(s);
  updateNotes();
}

function onError(f) {
  const sendErrors = ['invalid_message', 'rate_limited', 'chat_disabled', 'forbidden'];
  if (sendErrors.includes(f.code) && state.inflight.length) {
    const cid = state.inflight.shift();
    if (state.outbox.has(cid)) {
      const text = f.code === 'chat_disabled' ? 'chat is not enabled for your account' : f.code === 'rate_limited' ? 'too fast, try again' : 'not accepted';
      state.outbox.get(cid).failed = true;
      view.updatePending(cid, { failed: true, error: text });
    }
    return;
  }
  if (f.code === 'unavailable') {
    setTimeout(() => {
      if (!auth.relay || !auth.relay.connected) return;
      const retry = state.inflight.slice();
      state.inflight = [];
      for (const cid of retry) {
        const p = state.outbox.get(cid);
        if (p && !p.failed) sendPending(p);
      }
      for (const s of state.sessions.values()) if (!s.synced) subscribe(s);
    }, 1500);
    showActionError('The chat service is busy; retrying…');
    return;
  }
  showActionError('Something went wrong (' + (f.code || 'error') + ').');
}

function showActionError(text) {
  ui.actionError.textContent = text;
  ui.actionError.hidden = !text;
  if (state.errorTimer) clearTimeout(state.errorTimer);
  if (text) state.errorTimer = setTimeout(() => (ui.actionError.hidden = true), 6000);
}

// ---- sending, reading, typing ------------------------------------------------------------

/** Sends `text`, or with `upload` (lib/attachments.js) that file, with `text` as its caption. */
function send(text, upload) {
  const tooLong = textTooLong(text);
  if (tooLong) {
    showActionError(tooLong);
    return false;
  }
  typingSender.stop();
  const p = pendingMessage('p', state.openSessionId, text, upload);
  state.outbox.set(p.clientMessageId, p);
  view.addPending(p);
  renderWelcome();
  sendPending(p);
  return true;
}

function sendPending(p) {
  if (!auth.relay) return;
  // No sessionId: the relay writes into the open session, or opens one.
  const frame = { type: 'send_message', message: p.text, clientMessageId: p.clientMessageId };
  if (p.attachmentId) frame.attachmentId = p.attachmentId;
  const sent = auth.relay.send(frame);
  if (sent && !state.inflight.includes(p.clientMessageId)) state.inflight.push(p.clientMessageId);
  if (p.queued !== !sent) view.updatePending(p.clientMessageId, { queued: !sent });
}

/** Marks the GRE's messages read while the page is visible. */
/** One mark_read for however many messages arrive together (see coalesce). */
const markRead = coalesce(sendMarkRead, MARK_READ_DELAY_MS);

function sendMarkRead() {
  if (!auth.relay || !auth.relay.connected || document.visibilityState !== 'visible') return;
  const last = view.lastMessage((m) => m.sender !== 'player');
  if (!last || last.status === 'read' || state.lastMarked === last.id) return;
  state.lastMarked = last.id;
  auth.relay.send({ type: 'mark_read', sessionId: last.sessionId, upTo: last.id });
}

function renderTyping() {
  const anyGre = Array.from(state.sessions.keys()).some((sid) => typing.list(sid).length > 0);
  if (!anyGre) {
    ui.typing.replaceChildren();
    ui.typing.classList.remove('is-active');
    return;
  }
  ui.typing.replaceChildren(
    h('span', { class: 'typing-dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
    'Guest Relations is typing…'
  );
  ui.typing.classList.add('is-active');
}

function renderGreOnline(online, count) {
  ui.greOnline.setAttribute('data-online', online ? 'true' : 'false');
  ui.greOnline.classList.toggle('is-online', online);
  ui.greOnlineText.textContent = online
    ? count > 1
      ? 'A GRE is online · ' + count + ' on duty'
      : 'A GRE is online'
    : 'No GRE online right now. Leave a message and we will reply soon.';
}

function renderWelcome() {
  ui.welcome.hidden = !state.historyLoaded || view.messages.size > 0 || view.pending.size > 0;
}

/** A closing note under the latest conversation when it is closed. */
function updateNotes() {
  let latest = null;
  for (const s of state.sessions.values()) {
    if (!latest || view.sessionRank(s.id) > view.sessionRank(latest.id)) latest = s;
  }
  const closed = latest && latest.status === 'closed' && view.messages.size > 0;
  const note = 'This conversation was closed. Write again any time to start a new one.';
  const had = view.notes.length > 0;
  view.notes = closed ? [note] : [];
  if (had !== !!closed) view.schedule(false);
}

boot();
