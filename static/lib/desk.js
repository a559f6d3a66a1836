// The GRE desk in /console (issue 13): the canned-response picker of the reply box ("/" then a
// short code), the thread's transfer control and internal notes (staff only, shown apart from
// the conversation), and a small desk-settings panel. Everything goes through the documented
// REST API (/api/gre-admin/desk/*) and the staff-only WebSocket events (docs/protocol.md, "The GRE
// desk"). Builds its own DOM next to the console's; console.js hands it what it needs.

import { api } from './api.js';
import { h } from './dom.js';

/** Options the picker shows at most (the list of 50+ responses stays short and fast). */
const PICKER_MAX = 8;

/** `{name}` placeholders a canned response may hold, and what they become. */
export function expandPlaceholders(body, values) {
  return body.replace(/\{(gre_name|gre_id|player_id)\}/g, (whole, key) =>
    values[key] === undefined || values[key] === null ? whole : String(values[key])
  );
}

/** The `/code` being typed just before the caret, if any: {start, query}. */
export function slashQuery(text, caret) {
  const before = text.slice(0, caret);
  const m = /(^|\s)\/([a-z0-9_-]{0,32})$/i.exec(before);
  if (!m) return null;
  return { start: before.length - m[2].length - 1, query: m[2].toLowerCase() };
}

/** Canned responses matching a query: short codes starting with it first, then the rest. */
export function matchCanned(list, query) {
  const q = query.toLowerCase();
  const first = [];
  const then = [];
  for (const c of list) {
    if (c.shortCode.startsWith(q)) first.push(c);
    else if (q && ((c.title || '').toLowerCase().includes(q) || c.body.toLowerCase().includes(q))) then.push(c);
  }
  const byCode = (a, b) => (a.shortCode < b.shortCode ? -1 : a.shortCode > b.shortCode ? 1 : 0);
  return first.sort(byCode).concat(then.sort(byCode)).slice(0, PICKER_MAX);
}

export class Desk {
  /**
   * ctx: token() -> the bearer token; me() -> {id, name}; session(id) -> the session object;
   * thread() -> the selected session id or null; presence() -> Map greId -> staff_presence;
   * replyInput (textarea), anchor (node the thread tools go after), topbar (node the settings
   * button goes before: inside the signed-in part of the top bar), onError(text).
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.canned = new Map(); // id -> canned response
    this.settings = null;
    this.notes = []; // of the selected thread
    this.notesFor = null;
    this.picker = { open: false, items: [], index: 0, start: 0 };
    this.build();
  }

  // ---- DOM ---------------------------------------------------------------------------------

  build() {
    const c = this.ctx;
    // The picker sits above the reply box.
    this.pickerList = h('ul', { class: 'canned-picker', role: 'listbox', 'data-testid': 'canned-picker', hidden: true });
    c.replyInput.parentNode.insertBefore(this.pickerList, c.replyInput);
    this.pickerList.addEventListener('mousedown', (ev) => {
      const li = ev.target.closest('li[data-index]');
      if (!li) return;
      ev.preventDefault(); // keep the focus in the reply box
      this.pickerInsert(Number(li.dataset.index));
    });
    // Registered before the composer's own keydown (console.js builds the desk first), so Enter
    // picks a response instead of sending while the picker is open.
    c.replyInput.addEventListener('keydown', (ev) => this.pickerKey(ev));
    c.replyInput.addEventListener('input', () => this.pickerUpdate());
    c.replyInput.addEventListener('blur', () => this.pickerClose());

    // Transfer control and internal notes, under the thread's head.
    this.transferTarget = h('select', { class: 'input input--small', 'data-testid': 'transfer-target', 'aria-label': 'Transfer to' });
    this.transferNote = h('input', {
      class: 'input input--small desk-grow',
      'data-testid': 'transfer-note',
      placeholder: 'Note for staff (optional)',
      maxlength: '4000',
      'aria-label': 'Transfer note',
    });
    this.transferButton = h('button', { type: 'button', class: 'button button--secondary button--small', 'data-testid': 'transfer-submit' }, 'Transfer');
    this.transferButton.addEventListener('click', () => this.transfer());
    this.notesCount = h('span', { class: 'tab-count' }, '0');
    this.notesList = h('ol', { class: 'desk-notes-list', 'data-testid': 'note-list' });
    this.noteInput = h('input', {
      class: 'input input--small desk-grow',
      'data-testid': 'note-input',
      placeholder: 'Add an internal note (staff only)',
      maxlength: '4000',
      'aria-label': 'Internal note',
    });
    this.noteInput.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        this.addNote();
      }
    });
    const addButton = h('button', { type: 'button', class: 'button button--ghost button--small', 'data-testid': 'note-add' }, 'Add note');
    addButton.addEventListener('click', () => this.addNote());
    this.tools = h(
      'div',
      { class: 'desk-tools', 'data-testid': 'desk-tools' },
      (this.transferRow = h(
        'div',
        { class: 'desk-row' },
        h('span', { class: 'desk-label' }, 'Transfer to'),
        this.transferTarget,
        this.transferNote,
        this.transferButton
      )),
      h(
        'details',
        { class: 'desk-notes', 'data-testid': 'internal-notes' },
        h('summary', null, 'Internal notes ', this.notesCount, h('span', { class: 'desk-staff-only' }, 'staff only')),
        this.notesList,
        h('div', { class: 'desk-row' }, this.noteInput, addButton)
      )
    );
    c.anchor.after(this.tools);

    // The desk settings panel, opened from the top bar.
    this.settingsButton = h(
      'button',
      { type: 'button', class: 'button button--ghost button--small desk-toggle', 'data-testid': 'desk-settings-toggle', 'aria-label': 'Desk settings' },
      'Desk'
    );
    this.settingsButton.addEventListener('click', () => this.toggleSettings());
    c.topbar.parentNode.insertBefore(this.settingsButton, c.topbar);
    this.form = {
      autoAssign: h('input', { type: 'checkbox', 'data-testid': 'desk-auto-assign' }),
      defaultCapacity: h('input', { type: 'number', min: '1', max: '100', class: 'input input--small', 'data-testid': 'desk-default-capacity' }),
      myCapacity: h('input', { type: 'number', min: '0', max: '100', class: 'input input--small', placeholder: 'default', 'data-testid': 'desk-my-capacity' }),
      unavailableText: h('textarea', { class: 'input', rows: '2', maxlength: '1000', 'data-testid': 'desk-unavailable-text' }),
      afterHoursText: h('textarea', { class: 'input', rows: '2', maxlength: '1000', 'data-testid': 'desk-after-hours-text' }),
      timeZone: h('input', { class: 'input input--small', placeholder: 'Europe/Vienna', 'data-testid': 'desk-time-zone' }),
      hours: h('textarea', { class: 'input mono', rows: '3', spellcheck: 'false', 'data-testid': 'desk-hours' }),
    };
    this.settingsError = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const save = h('button', { type: 'submit', class: 'button button--primary button--small', 'data-testid': 'desk-save' }, 'Save');
    const field = (label, input, hint) => h('label', { class: 'desk-field' }, h('span', { class: 'field-label' }, label), input, hint ? h('span', { class: 'muted desk-hint' }, hint) : null);
    this.settingsForm = h(
      'form',
      { class: 'desk-form', autocomplete: 'off' },
      h('h2', { class: 'desk-title' }, 'Desk settings'),
      h('label', { class: 'desk-check' }, this.form.autoAssign, ' Assign new chats automatically'),
      h('div', { class: 'desk-row' }, field('Default capacity', this.form.defaultCapacity), field('My capacity', this.form.myCapacity)),
      field('When no GRE is available', this.form.unavailableText),
      field('Outside opening hours', this.form.afterHoursText),
      field('Time zone', this.form.timeZone),
      field('Opening hours', this.form.hours, 'One line per opening: day (0 = Sunday) opens-closes, e.g. "5 18:00-24:00". Empty: always open.'),
      this.settingsError,
      h('div', { class: 'desk-row' }, save)
    );
    this.settingsForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.saveSettings();
    });

    // The desk's canned responses: list, add, edit, delete (shared by every console, live).
    this.cannedForm = {
      code: h('input', { class: 'input input--small', placeholder: 'code', maxlength: '33', 'data-testid': 'canned-code', 'aria-label': 'Short code' }),
      title: h('input', { class: 'input input--small desk-grow', placeholder: 'Title (optional)', maxlength: '100', 'data-testid': 'canned-title', 'aria-label': 'Title' }),
      body: h('textarea', {
        class: 'input',
        rows: '2',
        maxlength: '4000',
        placeholder: 'Text. Placeholders: {gre_name} {gre_id} {player_id}',
        'data-testid': 'canned-body',
        'aria-label': 'Text',
      }),
    };
    this.cannedEditing = null; // id of the response being edited, or null for a new one
    this.cannedCount = h('span', { class: 'tab-count' }, '0');
    this.cannedAdminList = h('ul', { class: 'desk-canned-list', 'data-testid': 'canned-admin-list' });
    this.cannedError = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.cannedSave = h('button', { type: 'button', class: 'button button--secondary button--small', 'data-testid': 'canned-save' }, 'Add response');
    this.cannedSave.addEventListener('click', () => this.saveCanned());
    const cancel = h('button', { type: 'button', class: 'button button--ghost button--small' }, 'Clear');
    cancel.addEventListener('click', () => this.editCanned(null));
    this.cannedAdminList.addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-action]');
      if (!button) return;
      const id = button.closest('li').dataset.id;
      if (button.dataset.action === 'edit') this.editCanned(id);
      else if (button.dataset.armed === 'true') this.deleteCanned(id);
      else {
        // Two clicks, as the console's Close: a response shared by the whole desk is not
        // deleted by a slip of the mouse.
        button.dataset.armed = 'true';
        button.textContent = 'Delete for everyone?';
        setTimeout(() => {
          button.dataset.armed = 'false';
          button.textContent = 'Delete';
        }, 3000);
      }
    });
    const cannedSection = h(
      'section',
      { class: 'desk-canned' },
      h('h2', { class: 'desk-title' }, 'Canned responses ', this.cannedCount),
      this.cannedAdminList,
      h('div', { class: 'desk-row' }, this.cannedForm.code, this.cannedForm.title),
      this.cannedForm.body,
      this.cannedError,
      h('div', { class: 'desk-row' }, this.cannedSave, cancel)
    );
    this.settingsPanel = h(
      'div',
      { class: 'card desk-settings', 'data-testid': 'desk-settings', hidden: true },
      this.settingsForm,
      cannedSection
    );
    document.body.appendChild(this.settingsPanel);
  }

  renderCannedAdmin() {
    const list = Array.from(this.canned.values()).sort((a, b) => (a.shortCode < b.shortCode ? -1 : 1));
    this.cannedCount.textContent = String(list.length);
    this.cannedAdminList.replaceChildren(
      ...list.map((c) =>
        h(
          'li',
          { 'data-id': c.id, 'data-testid': 'canned-admin-item' },
          h('span', { class: 'canned-code mono' }, '/' + c.shortCode),
          h('span', { class: 'desk-grow desk-ellipsis' }, c.title || c.body),
          h('button', { type: 'button', class: 'link-button', 'data-action': 'edit' }, 'Edit'),
          h('button', { type: 'button', class: 'link-button desk-danger', 'data-action': 'delete' }, 'Delete')
        )
      )
    );
  }

  editCanned(id) {
    const c = id ? this.canned.get(id) : null;
    this.cannedEditing = c ? c.id : null;
    this.cannedForm.code.value = c ? c.shortCode : '';
    this.cannedForm.title.value = c ? c.title || '' : '';
    this.cannedForm.body.value = c ? c.body : '';
    this.cannedSave.textContent = c ? 'Save /' + c.shortCode : 'Add response';
    this.showCannedError('');
  }

  async saveCanned() {
    const token = this.ctx.token();
    const body = {
      shortCode: this.cannedForm.code.value.trim(),
      title: this.cannedForm.title.value.trim() || null,
      body: this.cannedForm.body.value,
    };
    const id = this.cannedEditing;
    try {
      const res = id
        ? await api(token, 'PUT', '/api/gre-admin/desk/canned-responses/' + encodeURIComponent(id), body)
        : await api(token, 'POST', '/api/gre-admin/desk/canned-responses', body);
      if (res.cannedResponse) this.canned.set(res.cannedResponse.id, res.cannedResponse);
      this.editCanned(null);
      this.renderCannedAdmin();
    } catch (e) {
      this.showCannedError(e.message);
    }
  }

  async deleteCanned(id) {
    if (!this.canned.has(id)) return;
    try {
      await api(this.ctx.token(), 'DELETE', '/api/gre-admin/desk/canned-responses/' + encodeURIComponent(id));
      this.canned.delete(id);
      if (this.cannedEditing === id) this.editCanned(null);
      this.renderCannedAdmin();
    } catch (e) {
      this.showCannedError(e.message);
    }
  }

  showCannedError(text) {
    this.cannedError.textContent = text;
    this.cannedError.hidden = !text;
  }

  // ---- loading and live events -------------------------------------------------------------

  /** After every (re)authentication: the shared lists may have changed while away. */
  async load() {
    const token = this.ctx.token();
    if (!token) return;
    try {
      const [list, settings] = await Promise.all([
        api(token, 'GET', '/api/gre-admin/desk/canned-responses'),
        api(token, 'GET', '/api/gre-admin/desk/settings'),
      ]);
      this.canned.clear();
      for (const c of list.cannedResponses || []) this.canned.set(c.id, c);
      this.renderCannedAdmin();
      this.settings = settings.settings;
      this.renderSettings();
      this.renderTransferTargets();
    } catch (e) {
      this.ctx.onError('Could not load the desk: ' + e.message);
    }
    const t = this.ctx.thread();
    if (t) this.showThread(t, true);
  }

  /** Signed out: nothing of the desk stays on the page. */
  reset() {
    this.canned.clear();
    this.settings = null;
    this.notes = [];
    this.notesFor = null;
    this.pickerClose();
    this.renderNotes();
    this.renderCannedAdmin();
    this.editCanned(null);
    this.settingsPanel.hidden = true;
    this.noteInput.value = '';
    this.transferNote.value = '';
  }

  /** Handles the desk's frames; returns true when the frame was one of them. */
  onFrame(f) {
    switch (f.type) {
      case 'canned_response_updated':
        if (f.cannedResponse) this.canned.set(f.cannedResponse.id, f.cannedResponse);
        this.pickerUpdate();
        this.renderCannedAdmin();
        return true;
      case 'canned_response_deleted':
        if (f.cannedResponse) this.canned.delete(f.cannedResponse.id);
        this.pickerUpdate();
        this.renderCannedAdmin();
        return true;
      case 'internal_note':
      case 'session_transferred':
        if (f.note && f.note.sessionId === this.notesFor && !this.notes.some((n) => n.id === f.note.id)) {
          this.notes.push(f.note);
          this.renderNotes();
        }
        return true;
      case 'desk_settings_updated':
        this.settings = f.settings || this.settings;
        this.renderSettings();
        this.renderTransferTargets();
        return true;
      case 'staff_presence':
        this.renderTransferTargets();
        return false; // console.js shows presence too
      default:
        return false;
    }
  }

  /** A thread was selected (or the connection came back): its notes. */
  async showThread(sessionId, force) {
    if (this.notesFor === sessionId && !force) return;
    this.notesFor = sessionId;
    this.notes = [];
    this.renderNotes();
    this.renderTransferTargets();
    const token = this.ctx.token();
    if (!sessionId || !token) return;
    try {
      const body = await api(token, 'GET', '/api/gre-admin/desk/sessions/' + encodeURIComponent(sessionId) + '/notes');
      if (this.notesFor !== sessionId) return;
      // Notes that arrived live while the list loaded are kept, once.
      const fetched = body.notes || [];
      const ids = new Set(fetched.map((n) => n.id));
      this.notes = fetched.concat(this.notes.filter((n) => !ids.has(n.id)));
      this.renderNotes();
    } catch (e) {
      this.ctx.onError('Could not load the internal notes: ' + e.message);
    }
  }

  // ---- the canned-response picker -----------------------------------------------------------

  pickerUpdate() {
    const input = this.ctx.replyInput;
    const q = document.activeElement === input ? slashQuery(input.value, input.selectionStart) : null;
    if (!q) {
      this.pickerClose();
      return;
    }
    const items = matchCanned(Array.from(this.canned.values()), q.query);
    this.picker = { open: true, items, index: Math.min(this.picker.open ? this.picker.index : 0, Math.max(items.length - 1, 0)), start: q.start };
    this.renderPicker();
  }

  pickerClose() {
    if (!this.picker.open) return;
    this.picker = { open: false, items: [], index: 0, start: 0 };
    this.renderPicker();
  }

  pickerKey(ev) {
    if (!this.picker.open || ev.isComposing) return;
    const n = this.picker.items.length;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      if (!n) return;
      ev.preventDefault();
      this.picker.index = (this.picker.index + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.renderPicker();
    } else if ((ev.key === 'Enter' || ev.key === 'Tab') && !ev.shiftKey && n) {
      ev.preventDefault();
      ev.stopImmediatePropagation(); // not a send: the text stays editable
      this.pickerInsert(this.picker.index);
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      this.pickerClose();
    }
  }

  pickerInsert(index) {
    const item = this.picker.items[index];
    if (!item) return;
    const input = this.ctx.replyInput;
    const me = this.ctx.me();
    const session = this.ctx.session(this.ctx.thread());
    const text = expandPlaceholders(item.body, {
      gre_name: me.name || me.id,
      gre_id: me.id,
      player_id: session ? session.playerId : undefined,
    });
    const caret = input.selectionStart;
    input.value = input.value.slice(0, this.picker.start) + text + input.value.slice(caret);
    const at = this.picker.start + text.length;
    input.setSelectionRange(at, at);
    this.pickerClose();
    input.dispatchEvent(new Event('input')); // resize the box, tell the typing indicator
    input.focus();
  }

  renderPicker() {
    const p = this.picker;
    this.pickerList.hidden = !p.open;
    if (!p.open) {
      this.pickerList.replaceChildren();
      return;
    }
    if (!p.items.length) {
      this.pickerList.replaceChildren(
        h('li', { class: 'canned-empty muted' }, this.canned.size ? 'No canned response matches' : 'No canned responses yet')
      );
      return;
    }
    this.pickerList.replaceChildren(
      ...p.items.map((c, i) =>
        h(
          'li',
          {
            class: 'canned-option' + (i === p.index ? ' is-active' : ''),
            role: 'option',
            'aria-selected': i === p.index ? 'true' : 'false',
            'data-index': String(i),
            'data-testid': 'canned-option',
          },
          h('span', { class: 'canned-code mono' }, '/' + c.shortCode),
          h('span', { class: 'canned-title' }, c.title || ''),
          h('span', { class: 'canned-body muted' }, c.body)
        )
      )
    );
  }

  // ---- transfers and notes ------------------------------------------------------------------

  renderTransferTargets() {
    const sessionId = this.ctx.thread();
    const session = sessionId ? this.ctx.session(sessionId) : null;
    const current = session ? session.assignedGreId : null;
    const names = new Map(((this.settings && this.settings.agents) || []).map((a) => [a.greId, a.displayName]));
    const keep = this.transferTarget.value;
    const options = [h('option', { value: '' }, 'The queue (next available GRE)')];
    const me = this.ctx.me().id;
    for (const [greId, p] of this.ctx.presence()) {
      if (!p.isOnline || greId === current) continue;
      const label = (names.get(greId) || greId) + (greId === me ? ' (you)' : '') + (p.status !== 'online' ? ' · ' + p.status : '');
      options.push(h('option', { value: greId }, label));
    }
    this.transferTarget.replaceChildren(...options);
    if (Array.from(this.transferTarget.options).some((o) => o.value === keep)) this.transferTarget.value = keep;
    const closed = !session || session.status === 'closed';
    this.tools.hidden = !sessionId;
    this.transferRow.hidden = closed; // a closed chat is nobody's to hand on; its notes stay
    this.transferButton.disabled = closed || (!current && !this.transferTarget.value);
  }

  async transfer() {
    const sessionId = this.ctx.thread();
    const token = this.ctx.token();
    if (!sessionId || !token) return;
    const to = this.transferTarget.value || null;
    const note = this.transferNote.value.trim();
    this.transferButton.disabled = true;
    try {
      await api(token, 'POST', '/api/gre-admin/desk/sessions/' + encodeURIComponent(sessionId) + '/transfer', {
        toGreId: to,
        note: note || null,
      });
      this.transferNote.value = '';
    } catch (e) {
      this.ctx.onError('Could not transfer: ' + e.message);
    } finally {
      this.renderTransferTargets();
    }
  }

  async addNote() {
    const sessionId = this.ctx.thread();
    const token = this.ctx.token();
    const text = this.noteInput.value.trim();
    if (!sessionId || !token || !text) return;
    try {
      const body = await api(token, 'POST', '/api/gre-admin/desk/sessions/' + encodeURIComponent(sessionId) + '/notes', { note: text });
      this.noteInput.value = '';
      if (body.note && this.notesFor === sessionId && !this.notes.some((n) => n.id === body.note.id)) {
        this.notes.push(body.note);
        this.renderNotes();
      }
    } catch (e) {
      this.ctx.onError('Could not add the note: ' + e.message);
    }
  }

  renderNotes() {
    this.notesCount.textContent = String(this.notes.length);
    const names = new Map(((this.settings && this.settings.agents) || []).map((a) => [a.greId, a.displayName]));
    const who = (id) => (id ? names.get(id) || id : 'the queue');
    this.notesList.replaceChildren(
      ...this.notes.map((n) =>
        h(
          'li',
          { class: 'desk-note desk-note--' + n.kind, 'data-testid': 'internal-note' },
          h(
            'div',
            { class: 'desk-note-head' },
            h('strong', null, n.authorName || n.authorId || 'Staff'),
            n.kind === 'transfer' ? ' transferred ' + who(n.fromGreId) + ' → ' + who(n.toGreId) : '',
            h('span', { class: 'muted' }, ' · ' + new Date(n.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }))
          ),
          n.note ? h('div', { class: 'desk-note-text' }, n.note) : null
        )
      )
    );
    if (this.notes.length) this.tools.querySelector('details').open = true;
  }

  // ---- settings -----------------------------------------------------------------------------

  toggleSettings() {
    this.settingsPanel.hidden = !this.settingsPanel.hidden;
    if (!this.settingsPanel.hidden) this.renderSettings();
  }

  renderSettings() {
    const s = this.settings;
    if (!s || this.settingsForm.contains(document.activeElement)) return; // never under the typist
    const me = this.ctx.me().id;
    const mine = (s.agents || []).find((a) => a.greId === me);
    this.form.autoAssign.checked = !!s.autoAssign;
    this.form.defaultCapacity.value = String(s.defaultCapacity);
    this.form.myCapacity.value = mine && mine.capacity !== null ? String(mine.capacity) : '';
    this.form.unavailableText.value = s.unavailableText || '';
    this.form.afterHoursText.value = s.afterHoursText || '';
    this.form.timeZone.value = s.timeZone || '';
    this.form.hours.value = (s.hours || []).map((o) => o.day + ' ' + o.opens + '-' + o.closes).join('\n');
  }

  async saveSettings() {
    const token = this.ctx.token();
    const f = this.form;
    const hours = [];
    for (const line of f.hours.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const m = /^([0-6])\s+(\d\d:\d\d)\s*-\s*(\d\d:\d\d)$/.exec(line);
      if (!m) {
        this.showSettingsError('Opening hours: "' + line + '" is not "day HH:MM-HH:MM".');
        return;
      }
      hours.push({ day: Number(m[1]), opens: m[2], closes: m[3] });
    }
    const body = {
      autoAssign: f.autoAssign.checked,
      defaultCapacity: Number(f.defaultCapacity.value) || 5,
      unavailableText: f.unavailableText.value,
      afterHoursText: f.afterHoursText.value,
      timeZone: f.timeZone.value.trim() || 'UTC',
      hours,
      agents: [{ greId: this.ctx.me().id, capacity: f.myCapacity.value === '' ? null : Number(f.myCapacity.value) }],
    };
    try {
      const res = await api(token, 'PUT', '/api/gre-admin/desk/settings', body);
      this.settings = res.settings;
      this.showSettingsError('');
      this.settingsPanel.hidden = true;
      this.renderTransferTargets();
    } catch (e) {
      this.showSettingsError(e.message);
    }
  }

  showSettingsError(text) {
    this.settingsError.textContent = text;
    this.settingsError.hidden = !text;
  }
}
