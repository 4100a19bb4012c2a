// The rig view: runs with progress and actions, live plots, channels,
// alarms, events and regulators of one rig.
import { h, keyed, text, dur, clock } from './dom.js';
import { Facility, RigLive } from './store.js';
import { Plots, fmtVal } from './plots.js';
import { runsOf } from './facility.js';

const WINDOWS = [[300, '5 min'], [600, '10 min'], [900, '15 min'], [1800, '30 min'], [3600, '1 h']];
// A reading older than this is shown greyed (setpoints are read back less often).
const STALE_S = { measured: 5, setpoint: 15 };

export class RigView {
  // app: {conn, facility, toast(msg, bad), askReason(what) -> Promise<string|null>}
  constructor(section, app, site, rig) {
    this.section = section;
    this.app = app;
    this.site = site;
    this.rig = rig;
    this.role = 'unknown';     // operator / viewer / unknown, from the probe
    this.live = new RigLive(site, rig, 600);
    this.historyNote = '';
    this.build();
    this.plots = new Plots(this.section.querySelector('#plots'), this.live);
    const base = `perfuse/v1/${site}/${rig}/`;
    this.topics = [base + 'samples', base + 'events'];
    for (const t of this.topics) app.conn.subscribe(t);
    const r = app.facility.rigs.get(site + '/' + rig);
    if (r && r.status) this.live.takeStatus(r.status, r.statusTime);
    this.probe();
    this.loadHistory();
    this.loadEvents();
  }

  destroy() {
    this.dead = true;   // replies still on their way find nothing to update
    for (const t of this.topics) this.app.conn.unsubscribe(t);
    clearTimeout(this.probeTimer);
    this.plots.destroy();
    this.section.textContent = '';
  }

  // Is this account an operator here? A harmless `status` on cmd/<user>: the
  // broker refuses it for a viewer (the ACL decides; the page only follows).
  async probe() {
    const rep = await this.app.conn.request(this.site, this.rig, { cmd: 'status' }, { channel: 'cmd', timeout: 5000 });
    if (this.dead) return;
    if (rep.ok) this.role = 'operator';
    else if (rep.error && rep.error.code === 'refused_by_broker') this.role = 'viewer';
    else { this.role = 'unknown'; this.probeTimer = setTimeout(() => this.probe(), 15000); }
    this.render();
  }

  // Fill the plots from the daemon's decimated history, if the daemon has the command.
  async loadHistory() {
    const minutes = Math.max(1, Math.min(60, Math.round(this.live.windowS / 60)));
    const rep = await this.app.conn.request(this.site, this.rig, { cmd: 'history', minutes, points: 1200 }, { channel: 'query', timeout: 6000 });
    if (this.dead) return;
    if (rep.ok && rep.result) {
      this.live.takeHistory(rep.result);
      this.historyNote = `history: the last ${minutes} min from the rig`;
    } else {
      this.historyNote = 'live samples only: ' + (rep.error && rep.error.code === 'timeout' ? 'the rig sent no history' : 'no history (' + (rep.error ? rep.error.message : '?') + ')');
    }
    this.plots.sync();
    this.render();
  }

  // Fill the event feed with each run's latest events, so that a page opened
  // in the middle of a run shows what came before it; the live messages that
  // follow merge with them (an event is keyed by its run and number).
  async loadEvents() {
    const r = this.app.facility.rigs.get(this.site + '/' + this.rig);
    const runs = runsOf(r && r.status);
    const asks = runs.length ? runs.map((x) => ({ cmd: 'events', last: 150, run: x.run_id || x.name }))
      : [{ cmd: 'events', last: 150 }];
    for (const req of asks) {
      const rep = await this.app.conn.request(this.site, this.rig, req, { channel: 'query', timeout: 6000 });
      if (this.dead) return;
      if (rep.ok && rep.result && this.live.takeEvents(rep.result.run_id, rep.result.events)) this.renderEvents();
    }
  }

  takeSamples(msg) { this.live.takeSamples(msg); }

  takeEvents(msg) { if (this.live.takeEvents(msg.run, msg.events)) this.renderEvents(); }

  takeStatus(r) {
    this.live.takeStatus(r.status, r.statusTime);
  }

  takeAlarms(r) {
    this.live.takeAlarms(r.alarms || [], r.alarmsTime || Date.now() / 1000);
  }

  build() {
    const winSel = h('select', { id: 'window', 'aria-label': 'time window of the plots' },
      WINDOWS.map(([s, l]) => h('option', { value: s, selected: s === 600 }, l)));
    winSel.addEventListener('change', () => {
      this.live.setWindow(Number(winSel.value));
      this.loadHistory();
      this.plots.draw(Date.now() / 1000);
    });
    this.section.append(
      h('div', { class: 'view-head' },
        h('div', {},
          h('div', { class: 'site' }, this.site),
          h('h1', { id: 'rig-title' }, this.rig)),
        h('div', { class: 'pills' },
          h('span', { class: 'pill', id: 'rig-conn' }),
          h('span', { class: 'pill', id: 'rig-state' }),
          h('span', { class: 'pill role', id: 'rig-role' }))),
      h('div', { class: 'rig-layout' },
        h('div', { class: 'col-main' },
          h('section', { class: 'card', 'aria-labelledby': 'runs-title' },
            h('div', { class: 'card-head' }, h('h2', { id: 'runs-title' }, 'Runs')),
            h('div', { id: 'prompt', class: 'prompt', hidden: true, role: 'alert' },
              h('div', { class: 'prompt-text' }),
              h('button', { type: 'button', class: 'btn primary act', id: 'confirm-btn', onclick: () => this.confirm() }, 'Confirm')),
            h('div', { id: 'runs', class: 'runs' }),
            h('p', { id: 'no-run', class: 'muted' }, 'No run.')),
          h('section', { class: 'card', 'aria-labelledby': 'plots-title' },
            h('div', { class: 'card-head' },
              h('h2', { id: 'plots-title' }, 'Live'),
              h('span', { id: 'history-note', class: 'muted small' }),
              h('label', { for: 'window', class: 'inline' }, 'Window', winSel)),
            h('div', { id: 'plots', class: 'plots' }))),
        h('div', { class: 'col-side' },
          h('section', { class: 'card', 'aria-labelledby': 'alarms-title' },
            h('div', { class: 'card-head' }, h('h2', { id: 'alarms-title' }, 'Alarms'),
              h('button', { type: 'button', class: 'btn small act', id: 'ack-all', onclick: () => this.ack('all') }, 'Ack all')),
            h('table', { class: 'grid alarms-table' },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Severity'), h('th', { scope: 'col' }, 'Alarm'), h('th', { scope: 'col' }, 'Age'), h('th', { scope: 'col' }, h('span', { class: 'sr' }, 'Action')))),
              h('tbody', { id: 'alarms' })),
            h('p', { id: 'no-alarm', class: 'muted' }, 'No alarm.')),
          h('section', { class: 'card', 'aria-labelledby': 'channels-title' },
            h('div', { class: 'card-head' }, h('h2', { id: 'channels-title' }, 'Channels')),
            h('table', { class: 'grid channels-table' },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Channel'), h('th', { scope: 'col', class: 'num' }, 'Value'), h('th', { scope: 'col' }, 'Unit'), h('th', { scope: 'col', class: 'num' }, 'Age'))),
              h('tbody', { id: 'channels' }))),
          h('section', { class: 'card', id: 'regulators-card', 'aria-labelledby': 'regulators-title', hidden: true },
            h('div', { class: 'card-head' }, h('h2', { id: 'regulators-title' }, 'Regulators')),
            h('table', { class: 'grid' },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Regulator'), h('th', { scope: 'col' }, 'Mode'), h('th', { scope: 'col', class: 'num' }, 'Setpoint'), h('th', { scope: 'col', class: 'num' }, 'Measured'), h('th', { scope: 'col', class: 'num' }, 'Output'))),
              h('tbody', { id: 'regulators' }))))),
      h('section', { class: 'card', 'aria-labelledby': 'events-title' },
        h('div', { class: 'card-head' }, h('h2', { id: 'events-title' }, 'Events')),
        h('div', { class: 'events-wrap', tabindex: 0, 'aria-label': 'event feed, newest first' },
          h('table', { class: 'grid events-table' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Severity'), h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col' }, 'Event'))),
            h('tbody', { id: 'events' })))));
  }

  // Refresh everything but the plots (those redraw on their own clock).
  render() {
    const r = this.app.facility.rigs.get(this.site + '/' + this.rig) || { state: null, status: null };
    const st = r.status || {};
    const q = (s) => this.section.querySelector(s);
    const operator = this.role === 'operator';
    const conn = q('#rig-conn');
    text(conn, r.state || 'unknown'); conn.className = 'pill ' + (r.state === 'online' ? 'good' : 'bad');
    const sp = q('#rig-state');
    text(sp, st.state || '—'); sp.className = 'pill st-' + (st.state || 'none');
    const rp = q('#rig-role');
    text(rp, this.role === 'operator' ? 'operator rights' : this.role === 'viewer' ? 'viewer: read only' : 'rights not known yet');
    text(q('#history-note'), this.historyNote);

    // Runs.
    const runs = runsOf(st);
    q('#no-run').hidden = runs.length > 0;
    keyed(q('#runs'), runs, (x) => x.run_id || x.name, (x) => this.makeRun(x), (el, x) => this.updateRun(el, x, st, operator));
    const prompt = q('#prompt');
    prompt.hidden = !st.prompt;
    if (st.prompt) text(prompt.querySelector('.prompt-text'), 'Waiting for the operator: ' + st.prompt);

    // Alarms.
    const alarms = Facility.alarms(r);
    q('#no-alarm').hidden = alarms.length > 0;
    keyed(q('#alarms'), alarms, (a) => a.id, (a) => h('tr', {},
      h('td', {}, h('span', { class: 'sev' })), h('td', { class: 'alarm-msg' }, h('div', { class: 'code' }), h('div', {})), h('td', { class: 'age num' }),
      h('td', {}, h('button', { type: 'button', class: 'btn small act ack', 'aria-label': 'acknowledge alarm ' + a.id, onclick: () => this.ack(a.id) }, 'Ack'))),
    (row, a) => {
      const s = row.querySelector('.sev');
      text(s, a.severity); s.className = 'sev sev-' + a.severity;
      row.className = 'alarm-' + a.state;
      const m = row.querySelector('.alarm-msg');
      text(m.firstChild, a.code);
      text(m.lastChild, a.message + (a.state !== 'active' ? ` (${a.state}${a.acked_by ? ' by ' + a.acked_by : ''})` : ''));
      // age_s is as of the message that listed it (alarms are not sent again for age alone).
      const base = (r.alarms ? r.alarmsTime : r.statusTime) || Date.now() / 1000;
      const ageNow = (Number(a.age_s) || 0) + Math.max(0, Date.now() / 1000 - base);
      text(row.querySelector('.age'), dur(ageNow));
      const b = row.querySelector('.ack');
      b.hidden = !operator || a.state === 'acknowledged';
    });
    q('#ack-all').hidden = !operator || !alarms.some((a) => a.state !== 'acknowledged');

    // Channels.
    const since = Math.max(0, Date.now() / 1000 - (r.statusTime || Date.now() / 1000));
    keyed(q('#channels'), st.channels || [], (c) => c.name, () => h('tr', {},
      h('th', { scope: 'row', class: 'ch-name' }), h('td', { class: 'num ch-val' }), h('td', { class: 'ch-unit' }), h('td', { class: 'num ch-age' })),
    (row, c) => {
      const age = c.age_s === undefined || c.age_s === null ? null : Number(c.age_s) + since;
      const limit = STALE_S[c.kind] || STALE_S.measured;
      const stale = c.value === null || c.value === undefined || age === null || age > limit || r.state !== 'online';
      row.classList.toggle('stale', stale);
      row.title = c.error ? 'last reading failed: ' + c.error : stale ? 'no fresh reading' : '';
      text(row.querySelector('.ch-name'), c.name);
      text(row.querySelector('.ch-val'), fmtVal(c.value) + (c.kind === 'setpoint' && c.setpoint !== undefined && c.setpoint !== null && c.setpoint !== c.value ? ` (set ${fmtVal(c.setpoint)})` : ''));
      text(row.querySelector('.ch-unit'), c.unit);
      text(row.querySelector('.ch-age'), age === null ? '—' : dur(age));
    });

    // Regulators.
    const regs = st.regulators || [];
    q('#regulators-card').hidden = regs.length === 0;
    keyed(q('#regulators'), regs, (g) => g.name, () => h('tr', {},
      h('th', { scope: 'row', class: 'g-name' }), h('td', { class: 'g-mode' }), h('td', { class: 'num g-sp' }), h('td', { class: 'num g-pv' }), h('td', { class: 'num g-out' })),
    (row, g) => {
      text(row.querySelector('.g-name'), `${g.name} (${g.measure} → ${g.actuator})`);
      text(row.querySelector('.g-mode'), g.mode + (g.faults && g.faults.length ? ' · ' + g.faults.join(', ') : ''));
      text(row.querySelector('.g-sp'), g.setpoint === null || g.setpoint === undefined ? '—' : fmtVal(g.setpoint) + ' ' + (g.units || ''));
      text(row.querySelector('.g-pv'), fmtVal(g.measurement) + ' ' + (g.units || ''));
      const out = g.output_confirmed !== null && g.output_confirmed !== undefined ? g.output_confirmed : g.output;
      text(row.querySelector('.g-out'), out === null || out === undefined ? '—' : fmtVal(out) + ' ' + (g.output_units || '') + (g.output_confirmed === null && g.output !== null ? ' (unconfirmed)' : ''));
    });

    q('#confirm-btn').hidden = !operator;
    this.renderEvents();
    this.plots.sync();
  }

  renderEvents() {
    const tb = this.section.querySelector('#events');
    const evs = this.live.events.slice(-150).reverse();
    keyed(tb, evs, (e) => e.key, () => h('tr', {}, h('td', { class: 'ev-time' }), h('td', {}, h('span', { class: 'sev' })), h('td', { class: 'ev-src' }), h('td', { class: 'ev-msg' })),
      (row, e) => {
        text(row.querySelector('.ev-time'), clock(e.utc));
        const s = row.querySelector('.sev');
        text(s, e.severity); s.className = 'sev sev-' + e.severity;
        text(row.querySelector('.ev-src'), e.source);
        text(row.querySelector('.ev-msg'), `${e.code}: ${e.message}`);
      });
  }

  makeRun(x) {
    const mk = (label, cmd) => h('button', { type: 'button', class: 'btn act run-' + cmd, onclick: () => this.runCommand(cmd, x.name) }, label);
    return h('div', { class: 'run' },
      h('div', { class: 'run-top' },
        h('div', {}, h('span', { class: 'run-name' }), h('span', { class: 'run-state' })),
        h('div', { class: 'run-actions' }, mk('Pause', 'pause'), mk('Resume', 'resume'), mk('Abort', 'abort'))),
      h('div', { class: 'run-step' }),
      h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('div', { class: 'bar' })),
      h('div', { class: 'run-meta muted' }),
      h('div', { class: 'run-reason' }));
  }

  updateRun(el, x, st, operator) {
    text(el.querySelector('.run-name'), (x.protocol || x.name) + ' ');
    const rs = el.querySelector('.run-state');
    text(rs, x.state); rs.className = 'run-state pill st-' + x.state;
    // The full step (with its timing) is in the status when this is its one run.
    const full = st.run_id === x.run_id ? st.step : null;
    const step = full || x.step;
    let stepText = step ? `Step ${step.path} · ${step.name}` + (step.kind ? ` (${step.kind})` : '') : 'no step';
    if (full && Number.isFinite(full.duration_s) && full.duration_s > 0) stepText += ` · ${dur(full.elapsed_s)} of ${dur(full.duration_s)}`;
    text(el.querySelector('.run-step'), stepText);
    const pct = Number.isFinite(x.progress) ? Math.round(x.progress * 1000) / 10 : (x.state === 'completed' ? 100 : 0);
    const pb = el.querySelector('.progress');
    pb.setAttribute('aria-valuenow', pct);
    pb.setAttribute('aria-label', 'progress of ' + x.name);
    el.querySelector('.bar').style.width = Math.min(100, pct) + '%';
    text(el.querySelector('.run-meta'), `${pct.toFixed(1)} % · ${dur(x.elapsed_s)} of ${dur(x.planned_total_s)}` +
      (x.run_active ? ` · ETA ${x.eta ? clock(x.eta) : 'unknown'}` : ''));
    const reason = st.run_id === x.run_id && st.pause_reason ? 'Paused: ' + st.pause_reason : '';
    text(el.querySelector('.run-reason'), reason);
    el.querySelector('.run-pause').hidden = !operator || x.state !== 'running';
    el.querySelector('.run-resume').hidden = !operator || x.state !== 'paused';
    el.querySelector('.run-abort').hidden = !operator || !x.run_active;
  }

  // Pause, resume or abort a run, with the reason the operator gives.
  async runCommand(cmd, run) {
    const reason = await this.app.askReason(`${cmd[0].toUpperCase() + cmd.slice(1)} run ${run} on ${this.rig}`);
    if (reason === null) return;
    const rep = await this.app.conn.request(this.site, this.rig, { cmd, reason, run });
    this.report(cmd, rep);
  }

  async confirm() {
    const r = this.app.facility.rigs.get(this.site + '/' + this.rig);
    const st = (r && r.status) || {};
    const req = { cmd: 'confirm' };
    if (st.prompt_id) req.prompt = st.prompt_id;
    if (st.name) req.run = st.name;
    this.report('confirm', await this.app.conn.request(this.site, this.rig, req));
  }

  async ack(id) {
    this.report('ack', await this.app.conn.request(this.site, this.rig, { cmd: 'ack', alarm: id }));
  }

  report(cmd, rep) {
    if (rep.ok) this.app.toast(`${cmd}: done`);
    else this.app.toast(`${cmd} refused: ${rep.error ? rep.error.message : 'no reply'}`, true);
  }
}
