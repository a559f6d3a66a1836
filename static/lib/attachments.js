// Images and files in the thread (docs/protocol.md "Attachments"): the attach button, drag and
// drop and paste on the composer, the upload with its progress, and how a message's attachment
// is shown (a thumbnail that opens a larger view, or a file card for a PDF).
//
// Files are loaded through short-lived signed links (GET .../attachments/:id/link), since an
// <img> or a download link cannot send the Authorization header. The links are same-origin, so
// the pages' CSP (img-src 'self') stays as strict as it was.

import { api } from './api.js';
import { h } from './dom.js';

/** What the relay takes (it sniffs the bytes itself; this only spares a useless upload). */
export const ACCEPTED = 'image/jpeg,image/png,image/webp,image/gif,application/pdf';
const LINK_PREFIX = '/api/gre-chat/attachments/';

/** A size for people: "840 KB", "2.4 MB". */
export function formatSize(bytes) {
  if (!(bytes >= 0)) return '';
  if (bytes < 1024) return bytes + ' B';
  if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + ' KB';
  return (bytes / (1024 * 1024)).toFixed(1) + ' MB';
}

/**
 * Uploads `file` to `path` with the bearer token; `onProgress(fraction)` while it goes. Resolves
 * to the upload ({id, name, type, size, width, height, kind}); rejects with .status and .code.
 * XMLHttpRequest, not fetch: fetch reports no upload progress.
 */
export function uploadFile(token, path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path + '?name=' + encodeURIComponent(file.name || ''));
    xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.addEventListener('progress', (ev) => {
      if (ev.lengthComputable && onProgress) onProgress(ev.loaded / ev.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (_) {
        body = null;
      }
      if (xhr.status === 201 && body && body.attachment) return resolve(body.attachment);
      const info = (body && body.error) || {};
      const err = new Error(info.message || 'the upload failed (HTTP ' + xhr.status + ')');
      err.status = xhr.status;
      err.code = info.code || 'http_' + xhr.status;
      reject(err);
    });
    xhr.addEventListener('error', () => {
      const err = new Error('the relay could not be reached');
      err.status = 0;
      err.code = 'network';
      reject(err);
    });
    xhr.send(file);
  });
}

/**
 * Adds an attach button (and a progress line) to a composer, and takes files dropped on
 * `dropTarget` or pasted into `textarea`. Each file is uploaded to `uploadPath`, then handed to
 * `onUploaded(upload)`, which sends it. `canAttach()` says whether a file may be sent now;
 * `onError(text)` shows a refusal.
 */
export function bindAttachments({ composer, sendButton, textarea, dropTarget, uploadPath, token, canAttach, onUploaded, onError }) {
  const input = h('input', { type: 'file', accept: ACCEPTED, class: 'attach-input', 'data-testid': 'attach-input', hidden: true });
  const button = h(
    'button',
    { type: 'button', class: 'button button--ghost composer-attach', 'data-testid': 'attach', title: 'Attach a photo or a PDF', 'aria-label': 'Attach a photo or a PDF' },
    'Attach'
  );
  const bar = h('progress', { max: '100', value: '0', class: 'upload-bar' });
  const label = h('span', { class: 'upload-label' });
  const progress = h('div', { class: 'upload-progress', 'data-testid': 'upload-progress', role: 'status', hidden: true }, bar, label);
  composer.insertBefore(button, sendButton);
  composer.appendChild(input);
  composer.parentNode.insertBefore(progress, composer);

  const take = async (file) => {
    if (!file) return;
    if (!canAttach()) return onError('Open a conversation first.');
    progress.hidden = false;
    bar.value = 0;
    label.textContent = 'Uploading ' + (file.name || 'file') + '…';
    button.disabled = true;
    try {
      const upload = await uploadFile(token(), uploadPath, file, (f) => (bar.value = Math.round(f * 100)));
      bar.value = 100;
      onUploaded(upload);
    } catch (e) {
      onError('Not sent: ' + e.message);
    } finally {
      progress.hidden = true;
      button.disabled = false;
      input.value = '';
    }
  };
  button.addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    for (const file of input.files || []) take(file);
  });
  dropTarget.addEventListener('dragover', (ev) => {
    if (ev.dataTransfer && Array.from(ev.dataTransfer.types || []).includes('Files')) {
      ev.preventDefault();
      dropTarget.classList.add('is-dropping');
    }
  });
  dropTarget.addEventListener('dragleave', () => dropTarget.classList.remove('is-dropping'));
  dropTarget.addEventListener('drop', (ev) => {
    dropTarget.classList.remove('is-dropping');
    const files = ev.dataTransfer ? Array.from(ev.dataTransfer.files || []) : [];
    if (!files.length) return;
    ev.preventDefault();
    for (const file of files) take(file);
  });
  textarea.addEventListener('paste', (ev) => {
    const files = ev.clipboardData ? Array.from(ev.clipboardData.files || []) : [];
    if (!files.length) return;
    ev.preventDefault();
    for (const file of files) take(file);
  });
  return { take };
}

/** Signed links already fetched: message id -> {url, expiresAt}. */
const links = new Map();

async function linkFor(token, messageId) {
  const now = Date.now() / 1000;
  const known = links.get(messageId);
  if (known && known.expiresAt - 30 > now) return known.url;
  const body = await api(token, 'GET', LINK_PREFIX + encodeURIComponent(messageId) + '/link');
  // Only the relay's own attachment paths: the page never loads what a response pointed at.
  if (!body || typeof body.url !== 'string' || !body.url.startsWith(LINK_PREFIX)) throw new Error('bad link');
  links.set(messageId, body);
  return body.url;
}

/** The larger view of an image: one overlay, reused; Escape or a click closes it. */
let viewer = null;
function openViewer(url, name) {
  if (!viewer) {
    const img = h('img', { class: 'att-viewer-img', 'data-testid': 'attachment-viewer-image', alt: '' });
    const caption = h('div', { class: 'att-viewer-caption' });
    const close = h('button', { type: 'button', class: 'button button--ghost att-viewer-close', 'aria-label': 'Close' }, 'Close');
    const node = h('div', { class: 'att-viewer', 'data-testid': 'attachment-viewer', role: 'dialog', 'aria-modal': 'true', hidden: true }, close, img, caption);
    const hide = () => (node.hidden = true);
    node.addEventListener('click', hide);
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') hide();
    });
    document.body.appendChild(node);
    viewer = { node, img, caption };
  }
  viewer.img.src = url;
  viewer.img.alt = name;
  viewer.caption.textContent = name;
  viewer.node.hidden = false;
}

/**
 * The view of message `m`'s attachment: a thumbnail (click: the larger view) or a file card
 * with the name, size and a download link. `token()` gives the current token.
 */
export function attachmentNode(token, m) {
  const a = m.attachment;
  if (a.kind === 'image') {
    const img = h('img', { class: 'att-thumb-img', alt: a.name, 'data-testid': 'attachment-image' });
    if (a.width && a.height) {
      img.width = Math.min(240, a.width);
      img.height = Math.round((img.width * a.height) / a.width);
    }
    const button = h('button', { type: 'button', class: 'att-thumb', title: a.name, 'data-testid': 'attachment-thumb' }, img);
    linkFor(token(), m.id)
      .then((url) => {
        img.src = url;
        button.addEventListener('click', () => openViewer(url, a.name));
      })
      .catch(() => button.classList.add('att--unavailable'));
    return button;
  }
  const link = h('a', { class: 'att-file-link', 'data-testid': 'attachment-download', rel: 'noopener', download: a.name }, 'Download');
  const card = h(
    'div',
    { class: 'att-file', 'data-testid': 'attachment-file' },
    h('span', { class: 'att-file-icon', 'aria-hidden': 'true' }, 'PDF'),
    h('span', { class: 'att-file-text' }, h('span', { class: 'att-file-name' }, a.name), h('span', { class: 'att-file-size' }, formatSize(a.size))),
    link
  );
  linkFor(token(), m.id)
    .then((url) => (link.href = url))
    .catch(() => card.classList.add('att--unavailable'));
  return card;
}
