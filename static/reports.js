// The console's Reports view: the chat analytics of a period (GET /api/gre-admin/analytics,
// definitions in docs/analytics.md) as cards, hand-drawn SVG charts and a per-GRE table, and the
// live "waiting now" / "longest wait" counters (the staff frame analytics_live). Every number
// shown is the API's; each carries it unformatted in data-value, so a test can compare.
// Text from the server reaches the page only as text nodes.

import { api } from './lib/api.js';
import { $, h } from './lib/dom.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const DAY_MS = 86400000;
const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** An SVG element with attributes (numbers and strings only) and children. */
function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'text') node.textContent = String(v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) node.appendChild(c);
  return node;
}

/** "45 s", "2 min 5 s", "1 h 20 min", "3 d 4 h"; "–" for null. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const t = Math.round(seconds);
  if (t < 60) return t + ' s';
  if (t < 3600) return Math.floor(t / 60) + ' min' + (t % 60 ? ' ' + (t % 60) + ' s' : '');
  if (t < 86400) {
    const hrs = Math.floor(t / 3600);
    const min = Math.floor((t % 3600) / 60);
    return hrs + ' h' + (min ? ' ' + min + ' min' : '');
  }
  const days = Math.floor(t / 86400);
  const hrs = Math.floor((t % 86400) / 3600);
  return days + ' d' + (hrs ? ' ' + hrs + ' h' : '');
}

function isoDate(d) {
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate());
}

function timeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch (_) {
    return 'UTC';
  }
}

/** A figure: its value unformatted in data-value, shown formatted. */
function figure(testid, value, shown) {
  return h('span', {
    class: 'rep-figure',
    'data-testid': testid,
    'data-value': value === null || value === undefined ? '' : String(value),
    text: shown,
  });
}

export class Reports {
  /** `getToken()`: the signed-in staff token, or null. */
  constructor(getToken) {
    this.getToken = getToken;
    this.ui = {
      nav: $('#view-nav'),
      toConversations: $('#nav-conversations'),
      toReports: $('#nav-reports'),
      appView: $('#app-view'),
      view: $('#reports-view'),
      form: $('#rep-form'),
      from: $('#rep-from'),
      to: $('#rep-to'),
      tz: $('#rep-tz'),
      csv: $('#rep-csv'),
      status: $('#rep-status'),
      waiting: $('#rep-waiting'),
      longest: $('#rep-longest'),
      cards: $('#rep-cards'),
      volume: $('#rep-volume'),
      frt: $('#rep-frt'),
      heatmap: $('#rep-heatmap'),
      gre: $('#rep-gre'),
    };
    this.live = { waitingNow: null, longestWaitSince: null };
    this.ticker = null;
    this.loading = 0;
    this.active = false;
  }

  bind() {
    const ui = this.ui;
    const today = new Date();
    ui.to.value = isoDate(today);
    ui.from.value = isoDate(new Date(today.getTime() - 29 * DAY_MS));
    ui.tz.textContent = timeZone();
    ui.toReports.addEventListener('click', () => this.show(true));
    ui.toConversations.addEventListener('click', () => this.show(false));
    ui.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.load();
    });
    for (const b of ui.form.querySelectorAll('[data-days]')) {
      b.addEventListener('click', () => {
        const days = Number(b.getAttribute('data-days'));
        const end = new Date();
        ui.to.value = isoDate(end);
        ui.from.value = isoDate(new Date(end.getTime() - (days - 1) * DAY_MS));
        this.load();
      });
    }
    ui.csv.addEventListener('click', () => this.downloadCsv());
  }

  /** Shows the Reports view (true) or the conversations (false). */
  show(reports) {
    this.active = reports;
    this.ui.appView.classList.toggle('is-reports', reports);
    this.ui.view.hidden = !reports;
    this.ui.toReports.classList.toggle('is-active', reports);
    this.ui.toConversations.classList.toggle('is-active', !reports);
    this.ui.toReports.setAttribute('aria-selected', String(reports));
    this.ui.toConversations.setAttribute('aria-selected', String(!reports));
    if (reports) this.load();
    this.tick();
  }

  /** The period as query parameters: [from, the day after to) in the browser's time zone. */
  query(group) {
    const end = new Date(this.ui.to.value + 'T00:00:00Z');
    const to = isNaN(end.getTime()) ? this.ui.to.value : new Date(end.getTime() + DAY_MS).toISOString().slice(0, 10);
    return new URLSearchParams({ from: this.ui.from.value, to, group, tz: timeZone() }).toString();
  }

  async load() {
    const token = this.getToken();
    if (!token || !this.active) return;
    const mine = ++this.loading;
    this.ui.status.textContent = 'Loading…';
    this.ui.status.hidden = false;
    this.ui.view.setAttribute('data-state', 'loading');
    try {
      // The totals come with the first report; the others leave them out (totals=false).
      const path = (g, totals) => '/api/gre-admin/analytics?' + this.query(g) + (totals ? '' : '&totals=false');
      const [day, week, gre, frt] = await Promise.all([
        api(token, 'GET', path('day', true)),
        api(token, 'GET', path('hour_of_week', false)),
        api(token, 'GET', path('gre', false)),
        api(token, 'GET', path('first_response', false)),
      ]);
      if (mine !== this.loading) return;
      this.renderCards(day.totals);
      this.renderVolume(day.rows);
      this.renderFrt(frt.rows);
      this.renderHeatmap(week.rows);
      this.renderGre(gre.rows);
      this.onLive(day.live);
      // Over 31 days the API reads medians and p90 from rollup histograms (docs/analytics.md,
      // "Long periods"): say so, so nobody compares them with a DBA's exact query unawares.
      const approx = [day.totals, ...(gre.rows || [])].some((r) => r && r.percentiles === 'histogram');
      this.ui.status.textContent = 'Medians and p90 of a period over 31 days come from histograms (within 2% or 1 s).';
      this.ui.status.hidden = !approx;
      this.ui.view.setAttribute('data-state', 'ready');
    } catch (e) {
      if (mine !== this.loading) return;
      this.ui.status.textContent = 'Could not load the report: ' + e.message;
      this.ui.view.setAttribute('data-state', 'error');
    }
  }

  async downloadCsv() {
    const token = this.getToken();
    if (!token) return;
    try {
      const res = await fetch('/api/gre-admin/analytics?' + this.query('day') + '&format=csv', {
        headers: { Authorization: 'Bearer ' + token, Accept: 'text/csv' },
        cache: 'no-store',
        credentials: 'omit',
      });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = 'gre-analytics-' + this.ui.from.value + '-' + this.ui.to.value + '.csv';
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      this.ui.status.textContent = 'Could not download the CSV: ' + e.message;
      this.ui.status.hidden = false;
    }
  }

  /** The live counters: from the report, then from every analytics_live frame. */
  onLive(live) {
    if (!live) return;
    this.live = { waitingNow: live.waitingNow, longestWaitSince: live.longestWaitSince || null };
    const w = this.ui.waiting;
    w.textContent = String(live.waitingNow);
    w.setAttribute('data-value', String(live.waitingNow));
    this.ui.longest.setAttribute('data-since', this.live.longestWaitSince || '');
    this.tick();
  }

  /** Counts the longest wait up every second while the view is shown. */
  tick() {
    clearTimeout(this.ticker);
    const since = this.live.longestWaitSince ? Date.parse(this.live.longestWaitSince) : NaN;
    this.ui.longest.textContent = isNaN(since) ? '–' : duration(Math.max(0, (Date.now() - since) / 1000));
    if (this.active && !isNaN(since)) this.ticker = setTimeout(() => this.tick(), 1000);
  }

  renderCards(t) {
    const card = (label, main, sub) =>
      h('div', { class: 'rep-card' }, h('div', { class: 'rep-card-label', text: label }), h('div', { class: 'rep-card-main' }, main), sub ? h('div', { class: 'rep-card-sub' }, sub) : null);
    this.ui.cards.replaceChildren(
      card('Sessions', figure('kpi-sessions', t.sessions, t.sessions), [
        figure('kpi-unanswered', t.unanswered, t.unanswered),
        ' unanswered',
      ]),
      card('First response', figure('kpi-frt-median', t.frtMedian, duration(t.frtMedian)), [
        'p90 ',
        figure('kpi-frt-p90', t.frtP90, duration(t.frtP90)),
        ' · ',
        figure('kpi-first-responses', t.firstResponses, t.firstResponses),
        ' answered',
      ]),
      card('Resolution', figure('kpi-resolution-median', t.resolutionMedian, duration(t.resolutionMedian)), [
        'p90 ',
        figure('kpi-resolution-p90', t.resolutionP90, duration(t.resolutionP90)),
        ' · ',
        figure('kpi-resolved', t.resolved, t.resolved),
        ' closed',
      ]),
      card('Reply time', figure('kpi-reply-median', t.replyMedian, duration(t.replyMedian)), [
        'p90 ',
        figure('kpi-reply-p90', t.replyP90, duration(t.replyP90)),
        ' · ',
        figure('kpi-replies', t.replies, t.replies),
        ' replies',
      ]),
      card('Messages', figure('kpi-player-messages', t.playerMessages, t.playerMessages), [
        'from players · ',
        figure('kpi-gre-messages', t.greMessages, t.greMessages),
        ' from GREs',
      ]),
    );
  }

  /** Stacked bars (player and GRE messages) per day, with sessions as a line on its own scale. */
  renderVolume(rows) {
    const W = 720;
    const H = 220;
    const pad = { l: 40, r: 40, t: 12, b: 28 };
    const n = Math.max(rows.length, 1);
    const maxMsg = Math.max(1, ...rows.map((r) => r.playerMessages + r.greMessages));
    const maxSes = Math.max(1, ...rows.map((r) => r.sessions));
    const bw = (W - pad.l - pad.r) / n;
    const y = (v, max) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'rep-svg', role: 'img', 'aria-label': 'Messages and sessions per day' });
    svg.appendChild(s('line', { x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b, class: 'rep-axis' }));
    svg.appendChild(s('text', { x: pad.l - 6, y: pad.t + 8, class: 'rep-tick rep-tick--end', text: maxMsg }));
    svg.appendChild(s('text', { x: W - pad.r + 6, y: pad.t + 8, class: 'rep-tick rep-tick--sessions', text: maxSes }));
    const points = [];
    rows.forEach((r, i) => {
      const x = pad.l + i * bw;
      const w = Math.max(1, bw * 0.7);
      const yp = y(r.playerMessages, maxMsg);
      const yg = y(r.playerMessages + r.greMessages, maxMsg);
      const g = s('g', { 'data-testid': 'volume-day', 'data-key': r.key, 'data-player': r.playerMessages, 'data-gre': r.greMessages, 'data-sessions': r.sessions },
        s('title', { text: `${r.key}: ${r.playerMessages} player, ${r.greMessages} GRE messages, ${r.sessions} sessions` }),
        s('rect', { x: x + bw * 0.15, y: yp, width: w, height: H - pad.b - yp, class: 'rep-bar rep-bar--player' }),
        s('rect', { x: x + bw * 0.15, y: yg, width: w, height: yp - yg, class: 'rep-bar rep-bar--gre' }));
      svg.appendChild(g);
      points.push([x + bw / 2, y(r.sessions, maxSes)]);
      const every = Math.ceil(n / 8);
      if (i % every === 0) svg.appendChild(s('text', { x: x + bw / 2, y: H - 8, class: 'rep-tick rep-tick--middle', text: r.key.slice(5) }));
    });
    if (points.length) {
      svg.appendChild(s('polyline', { points: points.map((p) => p.join(',')).join(' '), class: 'rep-line' }));
      for (const [cx, cy] of points) svg.appendChild(s('circle', { cx, cy, r: 2.5, class: 'rep-dot' }));
    }
    this.ui.volume.replaceChildren(svg);
  }

  /** The first-response distribution: one bar per bucket. */
  renderFrt(rows) {
    const W = 360;
    const H = 200;
    const pad = { l: 30, r: 8, t: 16, b: 28 };
    const max = Math.max(1, ...rows.map((r) => r.firstResponses));
    const bw = (W - pad.l - pad.r) / Math.max(rows.length, 1);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'rep-svg', role: 'img', 'aria-label': 'First response times' });
    svg.appendChild(s('line', { x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b, class: 'rep-axis' }));
    rows.forEach((r, i) => {
      const bh = (H - pad.t - pad.b) * (r.firstResponses / max);
      const x = pad.l + i * bw;
      svg.appendChild(s('g', { 'data-testid': 'frt-bucket', 'data-key': r.key, 'data-value': r.firstResponses },
        s('title', { text: `${r.key}: ${r.firstResponses}` }),
        s('rect', { x: x + bw * 0.12, y: H - pad.b - bh, width: bw * 0.76, height: bh, class: 'rep-bar rep-bar--frt' }),
        s('text', { x: x + bw / 2, y: H - pad.b - bh - 4, class: 'rep-tick rep-tick--middle', text: r.firstResponses }),
        s('text', { x: x + bw / 2, y: H - 10, class: 'rep-tick rep-tick--middle', text: r.key })));
    });
    this.ui.frt.replaceChildren(svg);
  }

  /** Sessions opened per hour of the week (local time), Monday first. */
  renderHeatmap(rows) {
    const cell = 22;
    const pad = { l: 34, t: 16 };
    const W = pad.l + 24 * cell + 4;
    const H = pad.t + 7 * cell + 4;
    const max = Math.max(1, ...rows.map((r) => r.sessions));
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'rep-svg', role: 'img', 'aria-label': 'Sessions by hour of the week' });
    for (let hr = 0; hr < 24; hr += 3) svg.appendChild(s('text', { x: pad.l + hr * cell + cell / 2, y: pad.t - 4, class: 'rep-tick rep-tick--middle', text: String(hr).padStart(2, '0') }));
    WEEKDAYS.forEach((d, i) => svg.appendChild(s('text', { x: pad.l - 6, y: pad.t + i * cell + cell * 0.68, class: 'rep-tick rep-tick--end', text: d })));
    for (const r of rows) {
      const [d, hr] = r.key.split('-').map(Number);
      const level = r.sessions === 0 ? 0 : 1 + Math.min(4, Math.floor((r.sessions / max) * 4.999));
      svg.appendChild(s('rect', {
        x: pad.l + hr * cell + 1, y: pad.t + (d - 1) * cell + 1, width: cell - 2, height: cell - 2, rx: 3,
        class: 'rep-heat rep-heat--' + level, 'data-testid': 'heat-cell', 'data-key': r.key, 'data-value': r.sessions,
      }, s('title', { text: `${WEEKDAYS[d - 1]} ${String(hr).padStart(2, '0')}:00: ${r.sessions} sessions, ${r.playerMessages + r.greMessages} messages` })));
    }
    this.ui.heatmap.replaceChildren(svg);
  }

  renderGre(rows) {
    const tbody = this.ui.gre;
    tbody.replaceChildren();
    for (const r of rows) {
      tbody.appendChild(h('tr', { 'data-testid': 'gre-row', 'data-key': r.key },
        h('th', { scope: 'row', text: r.key }),
        h('td', null, figure('gre-sessions', r.sessions, r.sessions)),
        h('td', null, figure('gre-replied', r.sessionsReplied, r.sessionsReplied)),
        h('td', null, figure('gre-first-responses', r.firstResponses, r.firstResponses)),
        h('td', null, figure('gre-frt-median', r.frtMedian, duration(r.frtMedian))),
        h('td', null, figure('gre-frt-p90', r.frtP90, duration(r.frtP90))),
        h('td', null, figure('gre-replies', r.replies, r.replies)),
        h('td', null, figure('gre-reply-median', r.replyMedian, duration(r.replyMedian))),
        h('td', null, figure('gre-resolution-median', r.resolutionMedian, duration(r.resolutionMedian))),
        h('td', null, figure('gre-messages', r.greMessages, r.greMessages))));
    }
    if (!rows.length) tbody.appendChild(h('tr', null, h('td', { colspan: '10', class: 'muted', text: 'No GRE activity in this period.' })));
  }
}
