// The sign-in both pages share: the token form, the token kept for the tab, the relay connection
// that lives as long as the sign-in, renewal with a fresh token, and sign-out. The page keeps its
// own state and views; it is told when a sign-in starts and when it ends.

import { $ } from './dom.js';
import { Relay } from './relay.js';
import { bindTokenRenewal } from './renewal.js';
import { takeTokenFromFragment, tokenClaims, tokenStore } from './token.js';

/**
 * Binds the sign-in form (#signin-view, #signin-form, #token-input, #signin-error), the app view
 * (#app-view), the sign-out button (#sign-out), the connection's retry button (#conn-retry) and the
 * renewal banner (see renewal.js).
 *   options.storageKey            where the tab keeps its token (sessionStorage)
 *   options.notATokenMessage      shown when the form gets something that is not a JWT
 *   options.expiredMessage        shown when the token has already expired
 *   options.relay                 { onState, onAuthenticated, onFrame } for the Relay
 *   options.onSignIn(token, claims)  the page shows its signed-in state (before the relay starts)
 *   options.onSignOut()           the page forgets its state (before the form shows again)
 *   options.onShowSignIn()        the page hides what belongs to a signed-in user
 * Returns { token, relay, start(), signOut(error) }; call start() once the page is bound.
 */
export function bindSignIn(options) {
  const ui = {
    signinView: $('#signin-view'),
    signinForm: $('#signin-form'),
    tokenInput: $('#token-input'),
    signinError: $('#signin-error'),
    appView: $('#app-view'),
    signOut: $('#sign-out'),
    connRetry: $('#conn-retry'),
  };
  const tokens = tokenStore(options.storageKey);
  let token = null;
  let relay = null;

  const renewal = bindTokenRenewal({
    current: () => token,
    onRenew: renew,
    onOtherIdentity: (t) => {
      signOut('');
      signIn(t);
    },
  });
  ui.signinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = ui.tokenInput.value.trim();
    if (t) signIn(t);
  });
  ui.signOut.addEventListener('click', () => signOut(''));
  ui.connRetry.addEventListener('click', () => relay && relay.retryNow());

  function showSignIn(error) {
    ui.appView.hidden = true;
    if (options.onShowSignIn) options.onShowSignIn();
    ui.signinView.hidden = false;
    ui.signinError.textContent = error || '';
    ui.signinError.hidden = !error;
    ui.tokenInput.focus();
  }

  function signIn(t) {
    const claims = tokenClaims(t);
    if (!claims) {
      showSignIn(options.notATokenMessage);
      return;
    }
    if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) {
      tokens.clear();
      showSignIn(options.expiredMessage);
      return;
    }
    tokens.set(t);
    token = t;
    ui.tokenInput.value = '';
    ui.signinView.hidden = true;
    ui.appView.hidden = false;
    relay = new Relay({
      token: t,
      onState: options.relay.onState,
      onAuthenticated: options.relay.onAuthenticated,
      onFrame: options.relay.onFrame,
      onAuthFailed: (reason) => signOut('The relay refused this token (' + reason + ').'),
      onTokenExpired: () => renewal.expired(),
    });
    options.onSignIn(t, claims);
    renewal.watch(t);
    relay.start();
  }

  /** A fresh token of the same identity: the page keeps its thread and resumes from its cursors. */
  function renew(t) {
    tokens.set(t);
    token = t;
    renewal.watch(t);
    if (relay) relay.renew(t);
  }

  function signOut(error) {
    renewal.reset();
    if (relay) relay.stop();
    relay = null;
    tokens.clear();
    token = null;
    options.onSignOut();
    showSignIn(error);
  }

  return {
    /** The current token, or null when signed out. */
    get token() {
      return token;
    },
    /** The connection of the current sign-in, or null when signed out. */
    get relay() {
      return relay;
    },
    /** Signs in with `#token=` from the address or the tab's stored token, else shows the form. */
    start() {
      const t = takeTokenFromFragment() || tokens.get();
      if (t) signIn(t);
      else showSignIn('');
    },
    signOut,
  };
}
