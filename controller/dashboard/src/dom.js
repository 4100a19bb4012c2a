// Small DOM helpers: build elements, keep lists of rows in place (so that a
// focused button survives an update), format times.

// h(tag, attrs, ...children): a new element. Attributes starting with "on" are listeners.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Keep PARENT's children one per item, keyed: make(item) builds a row,
// update(row, item) refreshes it in place. Rows of items gone are removed.
export function keyed(parent, items, key, make, update) {
  const have = new Map();
  for (const el of [...parent.children]) if (el.dataset.key !== undefined) have.set(el.dataset.key, el);
  let prev = null;
  for (const it of items) {
    const k = String(key(it));
    let el = have.get(k);
    if (!el) { el = make(it); el.dataset.key = k; }
    have.delete(k);
    update(el, it);
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (el !== want) parent.insertBefore(el, want);
    prev = el;
  }
  for (const el of have.values()) el.remove();
}

// Set text only when it changed (no needless layout work).
export function text(el, s) {
  s = s === undefined || s === null ? '' : String(s);
  if (el.textContent !== s) el.textContent = s;
}

// A duration in seconds as "1 h 02 min", "3 min 05 s", "12.3 s".
export function dur(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  s = Math.max(0, s);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  const m = Math.floor(s / 60), sec = Math.floor(s % 60);
  if (m < 60) return m + ' min ' + String(sec).padStart(2, '0') + ' s';
  const hh = Math.floor(m / 60), mm = m % 60;
  if (hh < 48) return hh + ' h ' + String(mm).padStart(2, '0') + ' min';
  return Math.floor(hh / 24) + ' d ' + (hh % 24) + ' h';
}

// An ISO time or Unix seconds as the local clock time (with the date if not today).
export function clock(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  if (isNaN(d)) return '—';
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + time;
}
