// The sign-in token: taken from `#token=`, kept per tab, read for display (the relay checks it).

/**
 * Reads `#token=...` from the address and removes it from the address bar (and from history),
 * so it is neither bookmarked nor shared. The fragment never reaches the server.
 */
export function takeTokenFromFragment() {
  const hash = location.hash.replace(/^#/, '');
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  if (!params.has('token')) return null;
  const token = (params.get('token') || '').trim();
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  return token || null;
}

/** The token's claims, for display only (the relay checks the signature). */
export function tokenClaims(token) {
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
}

/** A stored token for this tab (sessionStorage: gone when the tab closes). */
export function tokenStore(key) {
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
}

/** Whether two tokens name the same caller: a renewal must not switch identities. */
export function sameIdentity(a, b) {
  const x = tokenClaims(a);
  const y = tokenClaims(b);
  if (!x || !y) return false;
  const player = (c) => (c.app_metadata && c.app_metadata.player_id != null ? String(c.app_metadata.player_id) : null);
  if (player(x) !== null || player(y) !== null) return player(x) === player(y);
  return !!x.sub && x.sub === y.sub;
}
