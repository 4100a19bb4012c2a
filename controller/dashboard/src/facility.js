// The facility view: every rig on the broker with its state, runs and alarms.
import { h, keyed, text, dur, clock } from './dom.js';
import { Facility } from './store.js';

// Render the facility into SECTION (called on every change, and each second for ages).
export function renderFacility(section, facility) {
  if (!section.firstChild) {
    section.append(
      h('div', { class: 'view-head' },
        h('h1', { id: 'facility-title' }, 'Facility'),
        h('p', { class: 'summary', id: 'facility-summary' })),
      h('p', { class: 'empty', id: 'facility-empty' }, 'Waiting for rigs: none has published on this broker yet.'),
      h('div', { class: 'rig-grid', id: 'rig-grid', role: 'list' }));
  }
  const rigs = [...facility.rigs.values()].sort((a, b) => a.key.localeCompare(b.key));
  const online = rigs.filter((r) => r.state === 'online').length;
  const alarms = rigs.reduce((n, r) => n + holding(r).length, 0);
  text(section.querySelector('#facility-summary'),
    `${rigs.length} rig${rigs.length === 1 ? '' : 's'} · ${online} online · ${rigs.length - online} offline · ${alarms} active alarm${alarms === 1 ? '' : 's'}`);
  section.querySelector('#facility-empty').hidden = rigs.length > 0;
  keyed(section.querySelector('#rig-grid'), rigs, (r) => r.key, makeCard, updateCard);
}

// The alarms whose condition holds (active, or acknowledged and not yet cleared).
function holding(r) {
  return Facility.alarms(r).filter((a) => a.state === 'active' || a.state === 'acknowledged');
}

function makeCard(r) {
  const link = h('a', { class: 'rig-name', href: `#/rig/${encodeURIComponent(r.site)}/${encodeURIComponent(r.rig)}` }, r.rig);
  return h('article', { class: 'card rig-card', role: 'listitem', 'aria-label': 'rig ' + r.rig },
    h('header', {},
      h('div', {}, h('div', { class: 'site' }, r.site), link),
      h('div', { class: 'pills' }, h('span', { class: 'pill conn-pill' }), h('span', { class: 'pill state-pill' }))),
    h('div', { class: 'runs' }),
    h('p', { class: 'no-run muted' }, 'No run.'),
    h('div', { class: 'alarms' }),
    h('footer', { class: 'muted' }));
}

function updateCard(el, r) {
  const st = r.status || {};
  const off = r.state !== 'online';
  el.classList.toggle('offline', off);
  const cp = el.querySelector('.conn-pill');
  text(cp, r.state || 'unknown');
  cp.className = 'pill conn-pill ' + (off ? 'bad' : 'good');
  const sp = el.querySelector('.state-pill');
  // Offline, the state is only the last one the rig published: say so.
  text(sp, off && st.state ? 'last known: ' + st.state : st.state || '—');
  sp.className = 'pill state-pill ' + (off ? 'st-stale' : 'st-' + (st.state || 'none'));
  const runs = runsOf(st);
  keyed(el.querySelector('.runs'), runs, (x) => x.run_id || x.name, makeRunLine, updateRunLine);
  el.querySelector('.no-run').hidden = runs.length > 0;
  const active = holding(r);
  keyed(el.querySelector('.alarms'), active, (a) => a.id,
    () => h('div', { class: 'alarm-line' }, h('span', { class: 'sev' }), h('span', { class: 'msg' })),
    (row, a) => {
      const s = row.querySelector('.sev');
      text(s, a.severity); s.className = 'sev sev-' + a.severity;
      row.classList.toggle('acked', a.state === 'acknowledged');
      text(row.querySelector('.msg'), `${a.code}: ${a.message}` + (a.state === 'acknowledged' ? ' (acknowledged)' : ''));
    });
  const age = r.statusTime ? Date.now() / 1000 - r.statusTime : null;
  text(el.querySelector('footer'), (active.length ? active.length + ' active alarm' + (active.length > 1 ? 's' : '') + ' · ' : 'no active alarm · ') +
    (age === null ? 'no status yet' : 'status ' + dur(age) + ' ago') + (off && age !== null ? ' (may be out of date)' : ''));
}

// The runs a status lists (going ones first), or none.
export function runsOf(st) {
  if (!st) return [];
  const runs = Array.isArray(st.runs) ? st.runs : [];
  return runs.filter((x) => x.run_active).concat(runs.filter((x) => !x.run_active).slice(0, 1));
}

function makeRunLine() {
  return h('div', { class: 'run-line' },
    h('div', { class: 'run-top' }, h('span', { class: 'run-name' }), h('span', { class: 'run-state' })),
    h('div', { class: 'run-step' }),
    h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('div', { class: 'bar' })),
    h('div', { class: 'run-eta muted' }));
}

function updateRunLine(el, x) {
  text(el.querySelector('.run-name'), x.protocol || x.name);
  const rs = el.querySelector('.run-state');
  text(rs, x.state); rs.className = 'run-state st-' + x.state;
  const step = x.step ? `step ${x.step.path} ${x.step.name}` + (x.step.kind ? ` (${x.step.kind})` : '') : '—';
  text(el.querySelector('.run-step'), step);
  const pct = Number.isFinite(x.progress) ? Math.round(x.progress * 1000) / 10 : (x.state === 'completed' ? 100 : 0);
  const pb = el.querySelector('.progress');
  pb.setAttribute('aria-valuenow', pct);
  pb.setAttribute('aria-label', 'progress of ' + (x.name || 'run'));
  el.querySelector('.bar').style.width = Math.min(100, pct) + '%';
  text(el.querySelector('.run-eta'), `${pct.toFixed(1)} %` + (x.run_active ? ` · ETA ${x.eta ? clock(x.eta) : 'unknown'}` : ` · ended ${x.state}`));
}
