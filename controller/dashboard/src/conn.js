// The page's one connection to the broker: MQTT 5 over WebSocket, with
// reconnection, topic handlers and request/reply for perfused's commands.
import mqtt from '../node_modules/mqtt/dist/mqtt.esm.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

// Split perfuse/v1/<site>/<rig>/<kind>[/<user>] into its parts, or null.
export function parseTopic(topic) {
  const p = topic.split('/');
  if (p.length < 5 || p[0] !== 'perfuse' || p[1] !== 'v1') return null;
  return { site: p[2], rig: p[3], kind: p[4], user: p[5] };
}

export class Connection {
  constructor() {
    this.client = null;
    this.user = '';
    this.handlers = [];        // [{kind, fn}]
    this.pending = new Map();  // correlation id -> {resolve, timer}
    this.seq = 0;
    this.onstate = () => {};   // (state, detail): connecting / online / offline / refused
    this.subs = new Set();
  }

  // Connect to URL as USER; resolves at the first connection, rejects if refused.
  connect(url, user, password) {
    this.user = user;
    return new Promise((resolve, reject) => {
      let first = true;
      const c = mqtt.connect(url, {
        username: user, password, protocolVersion: 5, clean: true,
        clientId: 'perfuse-dash-' + user + '-' + Math.random().toString(16).slice(2, 10),
        reconnectPeriod: 2000, connectTimeout: 8000, keepalive: 20,
        resubscribe: false, queueQoSZero: false,
      });
      this.client = c;
      this.onstate('connecting');
      // The first login either connects or says why within 10 s (a wrong address
      // would otherwise be retried for ever behind the login form).
      const giveUp = setTimeout(() => {
        if (!first) return;
        first = false;
        c.end(true);
        reject(new Error('cannot reach the broker at ' + url));
      }, 10000);
      c.on('connect', () => {
        this.onstate('online');
        // A clean session forgets subscriptions: take them again (retained messages come back).
        const topics = [...this.subs];
        if (topics.length) c.subscribe(topics, { qos: 1 });
        if (first) { first = false; clearTimeout(giveUp); resolve(); }
      });
      c.on('reconnect', () => this.onstate('connecting'));
      c.on('offline', () => this.onstate('offline'));
      c.on('close', () => { if (!first) this.onstate('offline'); });
      c.on('error', (err) => {
        const code = err && err.code;
        // 134 bad user name or password, 135 not authorized: retrying will not help.
        if (code === 134 || code === 135 || code === 4 || code === 5) {
          c.end(true);
          this.onstate('refused', err.message);
          if (first) { first = false; clearTimeout(giveUp); reject(new Error('the broker refused the login (' + err.message + ')')); }
        } else {
          this.onstate('offline', err.message);
        }
      });
      c.on('message', (topic, payload, packet) => this.dispatch(topic, payload, packet));
    });
  }

  // Log out: close the connection and forget everything.
  close() {
    if (this.client) this.client.end(true);
    this.client = null;
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.resolve({ ok: false, error: { code: 'closed', message: 'logged out' } }); }
    this.pending.clear();
    this.handlers = [];
    this.subs.clear();
  }

  // Call fn(msg, parts) for every JSON message on a perfuse topic of that kind.
  on(kind, fn) { this.handlers.push({ kind, fn }); }

  subscribe(topic) {
    if (this.subs.has(topic)) return;
    this.subs.add(topic);
    if (this.client && this.client.connected) this.client.subscribe(topic, { qos: 1 });
  }

  unsubscribe(topic) {
    if (!this.subs.delete(topic)) return;
    if (this.client && this.client.connected) this.client.unsubscribe(topic);
  }

  dispatch(topic, payload, packet) {
    const parts = parseTopic(topic);
    if (!parts) return;
    let msg;
    try { msg = JSON.parse(dec.decode(payload)); } catch { return; }
    if (parts.kind === 'reply') { this.reply(msg, packet); return; }
    for (const h of this.handlers) if (h.kind === parts.kind) h.fn(msg, parts);
  }

  reply(msg, packet) {
    let id = null;
    const cd = packet && packet.properties && packet.properties.correlationData;
    if (cd) id = dec.decode(cd);
    if ((!id || !this.pending.has(id)) && msg && typeof msg.id === 'string') id = msg.id;
    const p = id && this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(msg);
  }

  // Send REQ (a control-protocol request) to a rig on cmd/<user> (operators) or
  // query/<user> (read-only commands, any account). Resolves with the reply,
  // or {ok:false, error:{code:'refused_by_broker'|'timeout'|...}}.
  request(site, rig, req, { channel = 'cmd', timeout = 8000 } = {}) {
    return new Promise((resolve) => {
      const c = this.client;
      if (!c || !c.connected) { resolve({ ok: false, error: { code: 'offline', message: 'not connected to the broker' } }); return; }
      const id = 'dash-' + (++this.seq) + '-' + Math.random().toString(16).slice(2, 8);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ ok: false, error: { code: 'timeout', message: 'no reply from ' + rig + ' within ' + timeout / 1000 + ' s' } });
      }, timeout);
      this.pending.set(id, { resolve, timer });
      const topic = `perfuse/v1/${site}/${rig}/${channel}/${this.user}`;
      const body = JSON.stringify({ ...req, id });
      c.publish(topic, body, { qos: 1, properties: { correlationData: enc.encode(id), responseTopic: `perfuse/v1/${site}/${rig}/reply/${this.user}` } }, (err) => {
        if (!err) return;
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        clearTimeout(timer);
        const code = err.code === 135 ? 'refused_by_broker' : 'publish_failed';
        resolve({ ok: false, error: { code, message: code === 'refused_by_broker' ? 'the broker does not let this account send that' : String(err.message || err) } });
      });
    });
  }
}
