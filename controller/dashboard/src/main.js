// perfuse's dashboard: log in to the broker, follow every rig's retained
// topics, show the facility or one rig (by the address's #/rig/SITE/RIG).
import { Connection } from './conn.js';
import { Facility } from './store.js';
import { renderFacility } from './facility.js';
import { RigView } from './rig.js';
import { h, text } from './dom.js';

const $ = (id) => document.getElementById(id);
const facility = new Facility();
let conn = null;
let rigView = null;
let dirty = true;

const app = {
  get conn() { return conn; },
  facility,
  toast,
  askReason,
};

// A short message in the corner (errors stay longer).
function toast(msg, bad = false) {
  const t = h('div', { class: 'toast' + (bad ? ' bad' : ''), role: bad ? 'alert' : 'status' }, msg);
  $('toasts').append(t);
  setTimeout(() => t.remove(), bad ? 9000 : 4000);
  while ($('toasts').children.length > 5) $('toasts').firstChild.remove();
}

// Ask for the reason of an action; resolves with it, or null if cancelled.
function askReason(what) {
  const dlg = $('reason-dialog');
  text($('reason-what'), what);
  $('reason-text').value = '';
  return new Promise((resolve) => {
    const done = (v) => {
      $('reason-form').removeEventListener('submit', onSubmit);
      $('reason-cancel').removeEventListener('click', onCancel);
      dlg.removeEventListener('cancel', onCancel);
      if (dlg.open) dlg.close();
      resolve(v);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const v = $('reason-text').value.trim();
      if (!v) { $('reason-text').focus(); return; }
      done(v);
    };
    const onCancel = (e) => { e.preventDefault(); done(null); };
    $('reason-form').addEventListener('submit', onSubmit);
    $('reason-cancel').addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    dlg.showModal();
    $('reason-text').focus();
  });
}

function setConnState(state, detail) {
  const el = $('conn');
  const words = { connecting: 'connecting…', online: 'connected', offline: 'disconnected', refused: 'login refused' };
  text(el, words[state] || state);
  el.className = 'conn ' + state;
  const banner = $('banner');
  if (state === 'offline' || (state === 'connecting' && conn && conn.everOnline)) {
    banner.hidden = false;
    text(banner, 'Disconnected from the broker: reconnecting by itself. What is shown may be out of date.' + (detail ? ' (' + detail + ')' : ''));
  } else if (state === 'online') {
    banner.hidden = true;
    // Back after an outage: what the rig said meanwhile comes from its history and events.
    if (conn.everOnline && rigView) { rigView.loadHistory(); rigView.loadEvents(); }
    conn.everOnline = true;
  }
  document.body.classList.toggle('disconnected', state !== 'online');
}

async function login(e) {
  e.preventDefault();
  const user = $('login-user').value.trim();
  const pass = $('login-pass').value;
  const url = $('login-url').value.trim();
  text($('login-error'), '');
  $('login-submit').disabled = true;
  conn = new Connection();
  conn.onstate = setConnState;
  conn.on('state', (m, p) => { facility.take('state', m, p); dirty = true; });
  conn.on('status', (m, p) => {
    const r = facility.take('status', m, p);
    if (rigView && rigView.site === p.site && rigView.rig === p.rig) rigView.takeStatus(r);
    dirty = true;
  });
  conn.on('alarms', (m, p) => {
    const r = facility.take('alarms', m, p);
    if (rigView && rigView.site === p.site && rigView.rig === p.rig) rigView.takeAlarms(r);
    dirty = true;
  });
  conn.on('samples', (m, p) => { if (rigView && rigView.site === p.site && rigView.rig === p.rig) rigView.takeSamples(m); });
  conn.on('events', (m, p) => { if (rigView && rigView.site === p.site && rigView.rig === p.rig) rigView.takeEvents(m); });
  for (const k of ['state', 'status', 'alarms']) conn.subscribe('perfuse/v1/+/+/' + k);
  conn.subscribe('perfuse/v1/+/+/reply/' + user);
  try {
    await conn.connect(url, user, pass);
  } catch (err) {
    text($('login-error'), err.message);
    $('login-submit').disabled = false;
    conn.close();
    conn = null;
    return;
  }
  sessionStorage.setItem('perfuse-user', user);
  $('login-pass').value = '';
  $('login-submit').disabled = false;
  $('login').hidden = true;
  $('logout').hidden = false;
  text($('who'), user);
  route();
}

function logout() {
  if (rigView) { rigView.destroy(); rigView = null; }
  if (conn) conn.close();
  conn = null;
  facility.rigs.clear();
  $('facility').textContent = '';
  $('facility').hidden = true;
  $('rig').hidden = true;
  $('login').hidden = false;
  $('logout').hidden = true;
  $('banner').hidden = true;
  text($('who'), '');
  text($('conn'), 'not connected');
  $('conn').className = 'conn';
  $('login-user').focus();
}

// Show the view the address names.
function route() {
  if (!conn) return;
  const m = location.hash.match(/^#\/rig\/([^/]+)\/([^/]+)$/);
  const crumbs = $('crumbs');
  crumbs.textContent = '';
  if (m) {
    const site = decodeURIComponent(m[1]), rig = decodeURIComponent(m[2]);
    if (!rigView || rigView.site !== site || rigView.rig !== rig) {
      if (rigView) rigView.destroy();
      rigView = new RigView($('rig'), app, site, rig);
    }
    $('facility').hidden = true;
    $('rig').hidden = false;
    crumbs.append(h('a', { href: '#/' }, 'Facility'), h('span', { 'aria-hidden': 'true' }, ' › '), h('span', {}, site + ' / ' + rig));
    document.title = rig + ' · perfuse';
  } else {
    if (rigView) { rigView.destroy(); rigView = null; }
    $('rig').hidden = true;
    $('facility').hidden = false;
    crumbs.append(h('span', {}, 'Facility'));
    document.title = 'Facility · perfuse';
  }
  dirty = true;
  tick();
}

// Redraw what changed; ages and the plots move on every second regardless.
function tick(plots = true) {
  if (!conn) return;
  if (rigView) {
    rigView.render();
    if (plots) rigView.plots.draw(Date.now() / 1000);
  } else {
    renderFacility($('facility'), facility);
  }
  dirty = false;
}

setInterval(() => { if (conn) tick(); }, 1000);
setInterval(() => { if (conn && dirty) tick(false); }, 250);

$('login-url').value = (location.protocol === 'https:' ? 'wss://' : 'ws://') + (location.host || 'localhost:8080') + '/mqtt';
$('login-user').value = sessionStorage.getItem('perfuse-user') || '';
$('login-form').addEventListener('submit', login);
$('logout').addEventListener('click', logout);
window.addEventListener('hashchange', route);
// For tests and diagnostics: what the page holds (bounded by construction).
window.perfuseDashboard = {
  facility,
  get conn() { return conn; },
  get rigView() { return rigView; },
  get role() { return rigView ? rigView.role : null; },
};
