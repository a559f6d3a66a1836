// The WebSocket connection to the relay: reconnects with backoff, heartbeats, token renewal.

import { show } from './dom.js';

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
export class Relay {
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

/** Binds a Relay's state to the status pill (`data-testid="connection-status"`). */
export function bindConnectionStatus(pill, detail, retryButton, relay) {
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
    if (retryButton) show(retryButton, state === 'reconnecting' && !!relay() && !relay().ws);
  };
}
