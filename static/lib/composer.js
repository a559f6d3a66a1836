// The reply box.

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
