// What the page knows: every rig's retained state, status and alarms (the
// facility), and for the rig on screen its channels' recent past, alarm
// spans and events, each in a bounded structure.
import { BucketRing, BUCKETS } from './ring.js';

export const MAX_EVENTS = 300;   // events kept for the feed
export const MAX_SPANS = 200;    // alarm spans kept for shading

export class Facility {
  constructor() {
    this.rigs = new Map();   // "site/rig" -> {site, rig, state, status, alarms, seen}
  }

  rig(site, rig) {
    const key = site + '/' + rig;
    let r = this.rigs.get(key);
    if (!r) {
      r = { key, site, rig, state: null, status: null, statusTime: 0, alarms: null, alarmsTime: 0, seen: 0, msgTime: 0 };
      this.rigs.set(key, r);
    }
    return r;
  }

  // Take a retained or live message of kind state / status / alarms.
  take(kind, msg, parts) {
    const r = this.rig(parts.site, parts.rig);
    r.seen = Date.now() / 1000;
    if (kind === 'state') r.state = msg.state || null;
    else if (kind === 'status' && msg.status) { r.status = msg.status; r.statusTime = msg.time || r.seen; }
    else if (kind === 'alarms' && Array.isArray(msg.alarms)) { r.alarms = msg.alarms; r.alarmsTime = msg.time || r.seen; }
    if (msg.time) r.msgTime = Math.max(r.msgTime, msg.time);
    return r;
  }

  // The rig's alarm list: the alarms topic if seen, else the status's.
  static alarms(r) {
    if (r.alarms) return r.alarms;
    return (r.status && r.status.alarms) || [];
  }
}

export class RigLive {
  // windowS: the plots' time window in seconds (300 to 3600).
  constructor(site, rig, windowS) {
    this.site = site;
    this.rig = rig;
    this.windowS = windowS;
    this.series = new Map();   // name -> {name, unit, kind, ring}
    this.setpoints = new Map(); // measured channel -> ring of its regulator's setpoint
    this.spans = [];           // {id, t0, t1 (null while active), severity, text}
    this.events = [];          // newest last
    this.eventKeys = new Set();
    this.runId = null;
    this.lastSample = 0;       // wall time of the newest sample
    this.samplesSeen = 0;
  }

  width() { return this.windowS / BUCKETS; }

  // Change the window: every ring is re-bucketed to the new width.
  setWindow(windowS) {
    if (windowS === this.windowS) return;
    this.windowS = windowS;
    const w = this.width();
    for (const s of this.series.values()) s.ring = s.ring.rebucket(w);
    for (const [k, r] of this.setpoints) this.setpoints.set(k, r.rebucket(w));
  }

  channel(name, unit, kind) {
    let s = this.series.get(name);
    if (!s) {
      s = { name, unit: unit || '', kind: kind || 'measured', ring: new BucketRing(this.width()) };
      this.series.set(name, s);
    }
    if (unit !== undefined && unit !== null) s.unit = unit;
    if (kind) s.kind = kind;
    return s;
  }

  // A samples message: times are t0 + t (t0 is 0 without a run).
  takeSamples(msg) {
    const t0 = Number(msg.t0) || 0;
    const chans = msg.channels || {};
    for (const name of Object.keys(chans)) {
      const c = chans[name];
      if (!c || !Array.isArray(c.t) || !Array.isArray(c.v)) continue;
      const s = this.channel(name, c.unit);
      const n = Math.min(c.t.length, c.v.length);
      for (let i = 0; i < n; i++) {
        const t = t0 + Number(c.t[i]);
        s.ring.add(t, c.v[i]);
        if (t > this.lastSample) this.lastSample = t;
      }
      this.samplesSeen += n;
    }
  }

  // The daemon's decimated history (the `history` command's result).
  takeHistory(result) {
    const chans = (result && result.channels) || {};
    const w = this.width();
    for (const name of Object.keys(chans)) {
      const c = chans[name];
      if (!c || !Array.isArray(c.t) || !Array.isArray(c.v)) continue;
      const old = this.series.get(name);
      const s = this.channel(name, c.unit, c.kind);
      // History first, then what live samples had already brought past its end.
      const ring = new BucketRing(w);
      for (let i = 0; i < c.t.length; i++) {
        ring.addBucket(Number(c.t[i]), c.v[i], c.min ? c.min[i] : null, c.max ? c.max[i] : null);
      }
      if (old) {
        const last = ring.size ? ring.lastT : -Infinity;
        old.ring.forEachFrom(Math.floor(last / w) + 1, (b, v) => ring.add((b + 0.5) * w, v === undefined ? null : v));
      }
      s.ring = ring;
    }
  }

  // A status: channel kinds and units, setpoints, alarm spans.
  takeStatus(st, time) {
    if (!st) return;
    if (st.run_id && st.run_id !== this.runId) this.runId = st.run_id;
    for (const c of st.channels || []) {
      this.channel(c.name, c.unit, c.kind);
    }
    for (const g of st.regulators || []) {
      if (g.measure) this.setpointRing(g.measure).add(time, g.setpoint === undefined ? null : g.setpoint);
    }
    this.takeAlarms(st.alarms || [], time);
  }

  setpointRing(name) {
    let r = this.setpoints.get(name);
    if (!r) { r = new BucketRing(this.width()); this.setpoints.set(name, r); }
    return r;
  }

  // An alarm list at wall time `time`: open a span for each new alarm whose
  // condition holds, close the spans of those that cleared or went.
  takeAlarms(list, time) {
    const active = new Set();
    for (const a of list) {
      // Acknowledged still means its condition holds: the span goes on until it clears.
      if (a.state !== 'active' && a.state !== 'acknowledged') continue;
      active.add(a.id);
      if (!this.spans.some((s) => s.id === a.id && s.t1 === null)) {
        const t0 = time - (Number(a.age_s) || 0);
        this.spans.push({ id: a.id, t0, t1: null, severity: a.severity, text: (a.source || '') + ': ' + (a.code || '') });
        if (this.spans.length > MAX_SPANS) this.spans.splice(0, this.spans.length - MAX_SPANS);
      }
    }
    for (const s of this.spans) if (s.t1 === null && !active.has(s.id)) s.t1 = time;
  }

  // An events message or an `events` reply: new ones appended, oldest dropped past the bound.
  takeEvents(runId, events) {
    let added = 0;
    for (const e of events || []) {
      const key = (runId || '') + ':' + e.seq;
      if (this.eventKeys.has(key)) continue;
      this.eventKeys.add(key);
      this.events.push({ ...e, key });
      added++;
    }
    if (added) {
      this.events.sort((a, b) => (a.utc || '').localeCompare(b.utc || '') || a.seq - b.seq);
      if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
      if (this.eventKeys.size > MAX_EVENTS * 4) this.eventKeys = new Set(this.events.map((e) => e.key));
    }
    return added;
  }
}
