// The reply box, and the message it sends before the relay has answered.

import { newClientMessageId } from './ids.js';

/** The contract's limit on a message's text, in characters (code points), not bytes. */
export const MAX_MESSAGE_CHARS = 4000;

/** Why `text` cannot be sent, or null. */
export function textTooLong(text) {
  return [...text].length > MAX_MESSAGE_CHARS
    ? 'A message can be at most ' + MAX_MESSAGE_CHARS + ' characters.'
    : null;
}

/**
 * A message on its way: shown at once as pending, kept in the outbox until the relay
 * acknowledges it. `upload` (lib/attachments.js) is the file sent with it, `text` its caption.
 */
export function pendingMessage(idPrefix, sessionId, text, upload) {
  return {
    clientMessageId: newClientMessageId(idPrefix),
    sessionId,
    text,
    attachmentId: upload ? upload.id : null,
    attachmentName: upload ? upload.name : null,
    createdAt: new Date(),
    failed: false,
    error: null,
  };
}

/**
 * A reply box: Enter sends, Shift+Enter (or Enter while composing with an IME) is a newline.
 * It grows with its content up to a limit.
 */
export function bindComposer(textarea, button, onSend, onInput) {
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
}
