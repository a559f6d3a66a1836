// Shared by /console (GRE staff) and /chat (player demo): DOM helpers, the sign-in token, REST
// calls, the WebSocket connection with backoff and resume hooks, and the message thread view.
// Plain JavaScript, no build step. Text from the server only ever reaches the page through text
// nodes (createTextNode / textContent), never as HTML.
(function () {
  'use strict';

  const GRE = {};

  // ---- DOM ---------------------------------------------------------------------------------

  /**
   * Creates an element. `attrs`: `class`, `text` (set as textContent), `on*` (event listeners,
   * functions only), anything else through setAttribute. Children: nodes, or strings and numbers
   * (inserted as text nodes); null, undefined and false are skipped; arrays are flattened.
   */
  GRE.h = function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === 'class') node.className = value;
        else if (key === 'text') node.textContent = String(value);
        else if (key.startsWith('on') && typeof value === 'function') {
          node.addEventListener(key.slice(2).toLowerCase(), value);
        } else if (key.startsWith('on') || key === 'style' || key === 'href' || key === 'src') {
          throw new Error('refusing to set ' + key + ' from data');
        } else node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    appendChildren(node, children);
    return node;
  };

  function appendChildren(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) appendChildren(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  GRE.$ = (selector, root) => (root || document).querySelector(selector);

  GRE.show = function (node, visible) {
    node.hidden = !visible;
  };

  // ---- time --------------------------------------------------------------------------------

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  GRE.parseTime = function (iso) {
    const d = iso ? new Date(iso) : null;
    return d && !isNaN(d.getTime()) ? d : null;
  };

  GRE.clock = function (d) {
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  };

  /** "14:02" today, "Yesterday", "Mon 24 Nov" this year, else "24 Nov 2024". */
  GRE.shortWhen = function (iso) {
    const d = GRE.parseTime(iso);
    if (!d) return '';
    const now = new Date();
    if (sameDay(d, now)) return GRE.clock(d);
    const y = new Date(now);
    y.setDate(now.getDate() - 1);
    if (sameDay(d, y)) return 'Yesterday';
    if (d.getFullYear() === now.getFullYear()) {
      return d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' });
    }
    return d.toLocaleDateString([], { day: 'numeric', month: 'short', year: 'numeric' });
  };

  GRE.dayLabel = function (d) {
    const now = new Date();
    if (sameDay(d, now)) return 'Today';
    const y = new Date(now);
    y.setDate(now.getDate() - 1);
    if (sameDay(d, y)) return 'Yesterday';
    return d.toLocaleDateString([], {
      weekday: 'long',
      day: 'numeric',
      month: 'long',
      year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric',
    });
  };

  GRE.fullWhen = function (iso) {
    const d = GRE.parseTime(iso);
    return d ? d.toLocaleString() : '';
  };

  // ---- cursors and ids ---------------------------------------------------------------------

  /** Orders two opaque cursors of one session. Today they are decimal strings. */
  GRE.compareCursor = function (a, b) {
    a = a === null || a === undefined ? '' : String(a);
    b = b === null || b === undefined ? '' : String(b);
    const digits = /^\d+$/;
    if (digits.test(a) && digits.test(b)) {
      const x = a.replace(/^0+(?=\d)/, '');
      const y = b.replace(/^0+(?=\d)/, '');
      if (x.length !== y.length) return x.length - y.length;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  };

  GRE.maxCursor = function (a, b) {
    if (a === null || a === undefined) return b;
    if (b === null || b === undefined) return a;
    return GRE.compareCursor(a, b) >= 0 ? a : b;
  };

  GRE.newClientMessageId = function (prefix) {
    const bytes = new Uint8Array(9);
    crypto.getRandomValues(bytes);
    let s = '';
    for (const b of bytes) s += b.toString(16).padStart(2, '0');
    return prefix + '-' + Date.now().toString(36) + '-' + s;
  };

  // ---- the sign-in token -------------------------------------------------------------------

  /**
   * Reads `#token=...` from the address and removes it from the address bar (and from history),
   * so it is neither bookmarked nor shared. The fragment never reaches the server.
   */
  GRE.takeTokenFromFragment = function () {
    const hash = location.hash.replace(/^#/, '');
    if (!hash) return null;
    const params = new URLSearchParams(hash);
    if (!params.has('token')) return null;
    const token = (params.get('token') || '').trim();
    params.delete('token');
    const rest = params.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
    return token || null;
  };

  /** The token's claims, for display only (the relay checks the signature). */
  GRE.tokenClaims = function (token) {
    try {
      const part = token.split('.')[1];
      let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
      while (b64.length % 4) b64 += '=';
      const bin = atob(b64);
      const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === 'object' ? claims : null;
    } catch (_) {
      return null;
    }
  };

  /** A stored token for this tab (sessionStorage: gone when the tab closes). */
  GRE.tokenStore = function (key) {
    return {
      get() {
        try {
          return sessionStorage.getItem(key);
        } catch (_) {
          return null;
        }
      },
      set(token) {
        try {
          sessionStorage.setItem(key, token);
        } catch (_) {
          /* storage may be disabled: the tab still works until reload */
        }
      },
      clear() {
        try {
          sessionStorage.removeItem(key);
        } catch (_) {
          /* ignore */
        }
      },
    };
  };

  /** Whether two tokens name the same caller: a renewal must not switch identities. */
  GRE.sameIdentity = function (a, b) {
    const x = GRE.tokenClaims(a);
    const y = GRE.tokenClaims(b);
    if (!x || !y) return false;
    const player = (c) => (c.app_metadata && c.app_metadata.player_id != null ? String(c.app_metadata.player_id) : null);
    if (player(x) !== null || player(y) !== null) return player(x) === player(y);
    return !!x.sub && x.sub === y.sub;
  };

  /**
   * The "sign-in ran out" banner both pages share (elements #renew-banner, #renew-text,
   * #renew-form, #renew-input, #renew-error). It warns a minute before the token's `exp`, takes
   * over when the relay says the token expired, and accepts a fresh token pasted into it or
   * given as a new `#token=` in the address (no reload). A token of the same identity goes to
   * `onRenew(token)` (the page keeps its thread and resumes from its cursors); another
   * identity to `onOtherIdentity(token)` (a full sign-in).
   */
  GRE.bindTokenRenewal = function (options) {
    const banner = document.getElementById('renew-banner');
    const text = document.getElementById('renew-text');
    const form = document.getElementById('renew-form');
    const input = document.getElementById('renew-input');
    const error = document.getElementById('renew-error');
    const WARN_BEFORE_MS = 60 * 1000;
    let warnTimer = null;

    function show(message, state) {
      text.textContent = message;
      banner.setAttribute('data-state', state);
      banner.hidden = false;
    }
    function hide() {
      banner.hidden = true;
      error.hidden = true;
      input.value = '';
    }
    function offer(token) {
      const claims = GRE.tokenClaims(token);
      if (!claims) {
        error.textContent = 'That does not look like a token.';
        error.hidden = false;
        return;
      }
      if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) {
        error.textContent = 'That token has expired too.';
        error.hidden = false;
        return;
      }
      hide();
      const current = options.current();
      if (current && GRE.sameIdentity(current, token)) options.onRenew(token);
      else options.onOtherIdentity(token);
    }
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (t) offer(t);
    });
    window.addEventListener('hashchange', () => {
      const t = GRE.takeTokenFromFragment();
      if (t) offer(t);
    });
    return {
      /** Schedules the early warning for `token` (call after each sign-in or renewal). */
      watch(token) {
        if (warnTimer) clearTimeout(warnTimer);
        warnTimer = null;
        const claims = GRE.tokenClaims(token);
        if (!claims || typeof claims.exp !== 'number') return;
        const warnIn = claims.exp * 1000 - WARN_BEFORE_MS - Date.now();
        warnTimer = setTimeout(() => {
          warnTimer = null;
          show('Your sign-in runs out in a minute. Paste a new token to stay connected.', 'expiring');
        }, Math.max(0, warnIn));
      },
      /** The relay ended the socket: the token ran out. */
      expired() {
        show('Your sign-in ran out. Paste a new token to carry on where you left off.', 'expired');
        input.focus();
      },
      /** Signed out: no banner, no warning. */
      reset() {
        if (warnTimer) clearTimeout(warnTimer);
        warnTimer = null;
        hide();
      },
    };
  };

  // ---- REST --------------------------------------------------------------------------------

  /** Calls the relay's REST API. Resolves to the parsed body; rejects with .status and .code. */
  GRE.api = async function (token, method, path, body) {
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
  };

  /** Every message of a message-page endpoint, following `hasMore`, oldest first. */
  GRE.fetchAllPages = async function (token, path, since) {
    let cursor = since || null;
    let sessionId = null;
    const messages = [];
    for (let page = 0; page < 200; page++) {
      const q = new URLSearchParams({ limit: '200' });
      if (cursor) q.set('since', cursor);
      const body = await GRE.api(token, 'GET', path + '?' + q.toString());
      sessionId = body.sessionId || sessionId;
      for (const m of body.messages || []) messages.push(m);
      cursor = body.nextCursor || cursor;
      if (!body.hasMore || !(body.messages || []).length) break;
    }
    return { sessionId, messages, cursor };
  };

  // ---- the WebSocket connection ------------------------------------------------------------

  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const PING_EVERY_MS = 25000;
  const PONG_WITHIN_MS = 10000;

  /**
   * One authenticated WebSocket to the relay that reconnects by itself: exponential backoff
   * (0.5 s doubling to 30 s) with jitter, immediately when the browser comes back online.
   * States: connecting, connected, reconnecting, disconnected.
   *   onAuthenticated(frame) — after each (re)connect: resubscribe and resend from there.
   *   onFrame(frame)         — every other server frame.
   *   onState(state, detail) — for the connection indicator.
   *   onAuthFailed(reason)   — the token was refused: the caller signs out.
   *   onTokenExpired()       — the token ran out on a live socket (error token_expired, close
   *                            4003): no more reconnects until renew() hands a fresh token.
   */
  class Relay {
    constructor(options) {
      this.token = options.token;
      this.onAuthenticated = options.onAuthenticated || (() => {});
      this.onFrame = options.onFrame || (() => {});
      this.onState = options.onState || (() => {});
      this.onAuthFailed = options.onAuthFailed || (() => {});
      this.onTokenExpired = options.onTokenExpired || (() => {});
      this.url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
      this.ws = null;
      this.authed = false;
      this.attempt = 0;
      this.everConnected = false;
      this.stopped = true;
      this.retryTimer = null;
      this.retryAt = 0;
      this.countdown = null;
      this.pingTimer = null;
      this.pongTimer = null;
      this.state = 'disconnected';
      this.onOnline = () => this.retryNow();
      this.onVisible = () => {
        if (document.visibilityState === 'visible' && !this.ws && !this.stopped) this.retryNow();
      };
    }

    start() {
      this.stopped = false;
      window.addEventListener('online', this.onOnline);
      document.addEventListener('visibilitychange', this.onVisible);
      this.open();
    }

    stop() {
      this.stopped = true;
      window.removeEventListener('online', this.onOnline);
      document.removeEventListener('visibilitychange', this.onVisible);
      this.clearRetry();
      this.stopHeartbeat();
      const ws = this.ws;
      this.ws = null;
      this.authed = false;
      if (ws) {
        detach(ws);
        try {
          ws.close(1000, 'signed out');
        } catch (_) {
          /* ignore */
        }
      }
      this.setState('disconnected', '');
    }

    /** Sends a frame if the connection is authenticated; returns whether it was sent. */
    send(frame) {
      if (!this.ws || !this.authed || this.ws.readyState !== WebSocket.OPEN) return false;
      try {
        this.ws.send(JSON.stringify(frame));
        return true;
      } catch (_) {
        return false;
      }
    }

    get connected() {
      return this.authed;
    }

    /**
     * A fresh token of the same identity. On a live socket it is sent as a new `authenticate`
     * (the relay extends the socket's life, subscriptions intact); after expiry the connection
     * starts again and the page resumes from its cursors.
     */
    renew(token) {
      this.token = token;
      if (this.authed && this.ws && this.ws.readyState === WebSocket.OPEN) {
        try {
          this.ws.send(JSON.stringify({ type: 'authenticate', token }));
          return;
        } catch (_) {
          /* fall through: reconnect with the new token */
        }
      }
      if (this.stopped) this.start();
      else this.retryNow();
    }

    retryNow() {
      if (this.stopped || this.ws) return;
      this.clearRetry();
      this.open();
    }

    setState(state, detail) {
      this.state = state;
      this.onState(state, detail || '');
    }

    open() {
      if (this.stopped) return;
      this.clearRetry();
      this.setState(this.everConnected || this.attempt > 0 ? 'reconnecting' : 'connecting', 'connecting…');
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (_) {
        this.scheduleRetry();
        return;
      }
      this.ws = ws;
      this.authed = false;
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: 'authenticate', token: this.token }));
      };
      ws.onmessage = (ev) => {
        if (this.ws !== ws) return;
        this.heard();
        let frame;
        try {
          frame = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        if (frame && typeof frame === 'object') this.handle(frame);
      };
      ws.onerror = () => {
        /* a close event follows */
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.lost(ev.code, ev.reason || '');
      };
    }

    handle(frame) {
      if (frame.type === 'authenticated' && this.authed) {
        // The answer to renew() on a live socket: nothing to redo.
        return;
      }
      if (frame.type === 'error' && frame.code === 'token_expired') {
        this.expire();
        return;
      }
      if (frame.type === 'authenticated') {
        this.authed = true;
        this.attempt = 0;
        this.everConnected = true;
        this.setState('connected', '');
        this.startHeartbeat();
        this.onAuthenticated(frame);
        return;
      }
      if (!this.authed && frame.type === 'error' && frame.code === 'unauthenticated') {
        const reason = frame.message || 'the token was refused';
        this.stop();
        this.onAuthFailed(reason);
        return;
      }
      if (frame.type === 'pong') return;
      this.onFrame(frame);
    }

    /** The connection ended: reconnect with backoff unless the token itself is the problem. */
    lost(code, reason) {
      const ws = this.ws;
      if (ws) detach(ws);
      this.ws = null;
      this.authed = false;
      this.stopHeartbeat();
      if (this.stopped) return;
      if (code === 4003) {
        this.expire();
        return;
      }
      if (code === 4001 && /invalid token/i.test(reason)) {
        this.stop();
        this.onAuthFailed('the token was refused');
        return;
      }
      this.scheduleRetry();
    }

    /** The token ran out: stop (a reconnect with it would be refused) and tell the page. */
    expire() {
      if (this.stopped) return;
      this.stop();
      this.setState('disconnected', 'sign-in ran out');
      this.onTokenExpired();
    }

    scheduleRetry() {
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt));
      const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
      this.attempt = Math.min(this.attempt + 1, 16);
      this.retryAt = Date.now() + delay;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.open();
      }, delay);
      const tick = () => {
        const left = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
        this.setState(this.everConnected ? 'reconnecting' : 'connecting', left > 0 ? 'retrying in ' + left + ' s' : 'retrying…');
      };
      tick();
      this.countdown = setInterval(tick, 1000);
    }

    clearRetry() {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      if (this.countdown) clearInterval(this.countdown);
      this.retryTimer = null;
      this.countdown = null;
    }

    // An application-level ping: browsers cannot see WebSocket pings, and a half-open TCP
    // connection would otherwise look "connected" for minutes.
    startHeartbeat() {
      this.stopHeartbeat();
      this.pingTimer = setInterval(() => {
        if (!this.send({ type: 'ping' })) return;
        if (!this.pongTimer) {
          this.pongTimer = setTimeout(() => {
            this.pongTimer = null;
            const ws = this.ws;
            if (ws) {
              try {
                ws.close(4000, 'no pong');
              } catch (_) {
                /* ignore */
              }
              this.lost(1006, 'no answer to ping');
            }
          }, PONG_WITHIN_MS);
        }
      }, PING_EVERY_MS);
    }

    heard() {
      if (this.pongTimer) clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }

    stopHeartbeat() {
      if (this.pingTimer) clearInterval(this.pingTimer);
      if (this.pongTimer) clearTimeout(this.pongTimer);
      this.pingTimer = null;
      this.pongTimer = null;
    }
  }

  function detach(ws) {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onerror = null;
    ws.onclose = null;
  }

  GRE.Relay = Relay;

  /** Binds a Relay's state to the status pill (`data-testid="connection-status"`). */
  GRE.bindConnectionStatus = function (pill, detail, retryButton, relay) {
    const labels = {
      connecting: 'connecting',
      connected: 'connected',
      reconnecting: 'reconnecting',
      disconnected: 'disconnected',
    };
    return function (state, text) {
      pill.textContent = labels[state] || state;
      pill.setAttribute('data-state', state);
      pill.className = 'conn conn--' + state;
      if (detail) detail.textContent = state === 'connected' ? '' : text;
      if (retryButton) GRE.show(retryButton, state === 'reconnecting' && !!relay() && !relay().ws);
    };
  };

  // ---- typing ------------------------------------------------------------------------------

  /**
   * Sends `typing` true at the first keystroke (and again every 3 s while typing goes on, so a
   * receiver's expiry never hides it), then false after 2.5 s without input, or at once on send.
   */
  GRE.TypingSender = class {
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
  };

  /** Others' typing, per session and typist, expiring after 6 s without a refresh. */
  GRE.TypingTracker = class {
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
  };

  // ---- the message thread ------------------------------------------------------------------

  /**
   * A scrolling list of messages, kept in order and free of duplicates. Each message is keyed by
   * its id; messages still being sent are keyed by their clientMessageId until the relay
   * confirms them.
   *   options.viewer: 'gre' or 'player' (whose messages are "mine", on the right)
   *   options.nameOf(message): the sender's display name
   *   options.sessionRank(sessionId): orders sessions when one thread shows several (player)
   *   options.onRetry(pending): a failed message's Retry button
   */
  GRE.ThreadView = class {
    constructor(scroller, list, options) {
      this.scroller = scroller;
      this.list = list;
      this.viewer = options.viewer;
      this.nameOf = options.nameOf;
      this.sessionRank = options.sessionRank || (() => 0);
      this.onRetry = options.onRetry || (() => {});
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
        return GRE.compareCursor(a.cursor, b.cursor);
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
      const items = this.sorted().map((m) => ({ kind: 'message', m, when: GRE.parseTime(m.createdAt) }));
      for (const p of this.pending.values()) items.push({ kind: 'pending', p, when: p.createdAt });
      for (const item of items) {
        const m = item.kind === 'message' ? item.m : null;
        const sessionId = m ? m.sessionId : item.p.sessionId;
        if (m && prevSession && sessionId !== prevSession) {
          rows.push(GRE.h('div', { class: 'divider divider--session', role: 'separator' }, 'New conversation'));
          prev = null;
        }
        if (m) prevSession = sessionId;
        const when = item.when || new Date();
        const day = when.toDateString();
        if (day !== prevDay) {
          rows.push(GRE.h('div', { class: 'divider', role: 'separator' }, GRE.dayLabel(when)));
          prevDay = day;
          prev = null;
        }
        if (m) {
          const grouped =
            prev &&
            prev.sender === m.sender &&
            prev.senderId === m.senderId &&
            m.sender !== 'system' &&
            when - (GRE.parseTime(prev.createdAt) || 0) < 5 * 60 * 1000;
          rows.push(this.messageNode(m, grouped));
          prev = m;
        } else {
          rows.push(this.pendingNode(item.p));
          prev = null;
        }
      }
      for (const note of this.notes) rows.push(GRE.h('div', { class: 'divider divider--note', role: 'note' }, note));
      this.list.replaceChildren(...rows);
      if (stick) this.scroller.scrollTop = this.scroller.scrollHeight;
      this.atBottom = this.nearBottom();
    }

    messageNode(m, grouped) {
      const key = m.id + '|' + (grouped ? 'g' : 'h');
      const cached = this.nodes.get(m.id);
      if (cached && cached.key === key) return cached.node;
      const side = m.sender === 'system' ? 'system' : this.isMine(m) ? 'mine' : 'theirs';
      const when = GRE.parseTime(m.createdAt);
      const meta = [];
      if (when) {
        meta.push(GRE.h('time', { class: 'msg-time', datetime: m.createdAt, title: GRE.fullWhen(m.createdAt) }, GRE.clock(when)));
      }
      if (side === 'mine') {
        const label = m.status === 'read' ? 'Read' : m.status === 'delivered' ? 'Delivered' : 'Sent';
        meta.push(GRE.h('span', { class: 'msg-receipt msg-receipt--' + (m.status || 'sent'), title: label }, label));
      }
      const node = GRE.h(
        'div',
        {
          class: 'msg msg--' + side + ' msg--from-' + m.sender + (grouped ? ' msg--grouped' : ''),
          'data-testid': 'message',
          'data-message-id': m.id,
          'data-sender': m.sender,
          'data-status': m.status || '',
        },
        grouped || side === 'system' ? null : GRE.h('div', { class: 'msg-name' }, this.nameOf(m)),
        GRE.h('div', { class: 'msg-bubble' }, GRE.h('span', { class: 'msg-text' }, m.message)),
        GRE.h('div', { class: 'msg-meta' }, meta)
      );
      this.nodes.set(m.id, { key, node });
      return node;
    }

    pendingNode(p) {
      const cached = this.nodes.get('p:' + p.clientMessageId);
      if (cached) return cached.node;
      const node = GRE.h(
        'div',
        {
          class: 'msg msg--mine msg--pending' + (p.failed ? ' msg--failed' : ''),
          'data-testid': 'pending-message',
          'data-client-message-id': p.clientMessageId,
        },
        GRE.h('div', { class: 'msg-bubble' }, GRE.h('span', { class: 'msg-text' }, p.text)),
        GRE.h(
          'div',
          { class: 'msg-meta' },
          p.failed
            ? [
                GRE.h('span', { class: 'msg-error' }, 'Not sent' + (p.error ? ': ' + p.error : '')),
                GRE.h('button', { type: 'button', class: 'link-button', onclick: () => this.onRetry(p) }, 'Retry'),
                GRE.h('button', { type: 'button', class: 'link-button', onclick: () => this.dropPending(p.clientMessageId) }, 'Discard'),
              ]
            : GRE.h('span', { class: 'msg-receipt msg-receipt--sending' }, p.queued ? 'Waiting for the connection…' : 'Sending…')
        )
      );
      this.nodes.set('p:' + p.clientMessageId, { key: 'p', node });
      return node;
    }
  };

  /**
   * A reply box: Enter sends, Shift+Enter (or Enter while composing with an IME) is a newline.
   * It grows with its content up to a limit.
   */
  GRE.bindComposer = function (textarea, button, onSend, onInput) {
    const fit = () => {
      textarea.style.height = 'auto';
      const border = textarea.offsetHeight - textarea.clientHeight;
      const wanted = textarea.scrollHeight + border;
      textarea.style.height = Math.min(wanted, 180) + 'px';
      textarea.style.overflowY = wanted > 180 ? 'auto' : 'hidden';
    };
    const submit = () => {
      const text = textarea.value;
      if (!text.trim()) return;
      if (onSend(text) !== false) {
        textarea.value = '';
        fit();
      }
      textarea.focus();
    };
    textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        submit();
      }
    });
    textarea.addEventListener('input', () => {
      fit();
      if (textarea.value.trim()) onInput();
    });
    button.addEventListener('click', submit);
  };

  window.GRE = GRE;
})();
