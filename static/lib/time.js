// Times for display: clock, short and long dates, day dividers.

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

export function parseTime(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !isNaN(d.getTime()) ? d : null;
}

export function clock(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** "14:02" today, "Yesterday", "Mon 24 Nov" this year, else "24 Nov 2024". */
export function shortWhen(iso) {
  const d = parseTime(iso);
  if (!d) return '';
  const now = new Date();
  if (sameDay(d, now)) return clock(d);
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return 'Yesterday';
  if (d.getFullYear() === now.getFullYear()) {
    return d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' });
  }
  return d.toLocaleDateString([], { day: 'numeric', month: 'short', year: 'numeric' });
}

export function dayLabel(d) {
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
}

export function fullWhen(iso) {
  const d = parseTime(iso);
  return d ? d.toLocaleString() : '';
}

/**
 * `fn` run at most once per `ms`: calls within the window are folded into one run at its end.
 * For acknowledgements such as mark_read, where only the latest state matters and a burst of
 * arriving messages must not become a burst of frames (the relay rate-limits frames).
 */
export function coalesce(fn, ms) {
  let timer = null;
  return function () {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}
