// The "sign-in ran out" banner both pages share.

import { sameIdentity, takeTokenFromFragment, tokenClaims } from './token.js';

/**
 * The "sign-in ran out" banner both pages share (elements #renew-banner, #renew-text,
 * #renew-form, #renew-input, #renew-error). It warns a minute before the token's `exp`, takes
 * over when the relay says the token expired, and accepts a fresh token pasted into it or
 * given as a new `#token=` in the address (no reload). A token of the same identity goes to
 * `onRenew(token)` (the page keeps its thread and resumes from its cursors); another
 * identity to `onOtherIdentity(token)` (a full sign-in).
 */
export function bindTokenRenewal(options) {
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
    const claims = tokenClaims(token);
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
    if (current && sameIdentity(current, token)) options.onRenew(token);
    else options.onOtherIdentity(token);
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (t) offer(t);
  });
  window.addEventListener('hashchange', () => {
    const t = takeTokenFromFragment();
    if (t) offer(t);
  });
  return {
    /** Schedules the early warning for `token` (call after each sign-in or renewal). */
    watch(token) {
      if (warnTimer) clearTimeout(warnTimer);
      warnTimer = null;
      const claims = tokenClaims(token);
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
}
