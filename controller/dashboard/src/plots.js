// Live plots of the rig on screen: one uPlot panel per unit, measurements
// solid, setpoints dashed, alarm spans shaded; redrawing stops while the
// pointer is over a panel so that a value can be read off it.
import uPlot from '../node_modules/uplot/dist/uPlot.esm.js';
import { h } from './dom.js';

const COLORS = ['#4aa3ff', '#f2b134', '#58c98a', '#e0607e', '#b28cff', '#40c4c4', '#ff8a4c', '#c0ca33', '#8fa3bf', '#ff6fd8'];


function unitLabel(u) { return u ? u : 'no unit'; }

export class Plots {
  // container: the element the panels go in; live: the RigLive they show.
  constructor(container, live) {
    this.container = container;
    this.live = live;
    this.panels = new Map();   // unit -> panel
    this.hovered = null;       // the panel the pointer is over (its redraw waits)
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(container);
  }

  destroy() {
    this.ro.disconnect();
    for (const p of this.panels.values()) p.u.destroy();
    this.panels.clear();
    this.container.textContent = '';
  }

  // The series each unit's panel should have: measured and setpoint channels,
  // and the regulators' setpoints over their measurements.
  layout() {
    const byUnit = new Map();
    const names = [...this.live.series.keys()].sort();
    for (const name of names) {
      const s = this.live.series.get(name);
      const u = s.unit || '';
      if (!byUnit.has(u)) byUnit.set(u, []);
      const list = byUnit.get(u);
      // Colours in the panel's order, so that a panel's lines differ; a regulator's
      // setpoint takes its measurement's colour.
      const color = COLORS[list.filter((x) => x.kind !== 'regsp').length % COLORS.length];
      list.push({ key: name, label: name, kind: s.kind, ring: () => this.live.series.get(name).ring, color, dash: s.kind === 'setpoint' });
      if (this.live.setpoints.has(name)) {
        list.push({ key: name + '#sp', label: name + ' setpoint', kind: 'regsp', ring: () => this.live.setpoints.get(name), color, dash: true, span: true });
      }
    }
    return byUnit;
  }

  // Make, remake or drop panels to match the channels known now.
  sync() {
    const byUnit = this.layout();
    for (const [unit, p] of this.panels) {
      if (!byUnit.has(unit)) { p.u.destroy(); p.el.remove(); this.panels.delete(unit); }
    }
    const units = [...byUnit.keys()].sort((a, b) => byUnit.get(b).length - byUnit.get(a).length || a.localeCompare(b));
    for (const unit of units) {
      const series = byUnit.get(unit);
      const sig = series.map((s) => s.key + (s.dash ? '-' : '')).join('|');
      let p = this.panels.get(unit);
      if (p && p.sig === sig) continue;
      if (p) { p.u.destroy(); p.el.remove(); }
      p = this.makePanel(unit, series, sig);
      this.panels.set(unit, p);
    }
    // Keep the panels in the order above.
    for (const unit of units) this.container.appendChild(this.panels.get(unit).el);
  }

  makePanel(unit, series, sig) {
    const el = h('figure', { class: 'panel', 'data-unit': unit });
    const cap = h('figcaption', {}, h('span', { class: 'panel-unit' }, unitLabel(unit)), h('span', { class: 'panel-state' }, ''));
    const box = h('div', { class: 'panel-plot', role: 'img', 'aria-label': 'plot of the channels in ' + unitLabel(unit) });
    el.append(cap, box);
    this.container.appendChild(el);
    const live = this.live;
    const opts = {
      width: Math.max(200, box.clientWidth || this.container.clientWidth || 600),
      height: 170,
      pxAlign: 0,
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      legend: { show: true, live: true },
      scales: { x: { time: true } },
      axes: [
        { stroke: '#9aa7b6', grid: { stroke: 'rgba(154,167,182,0.12)', width: 1 }, ticks: { stroke: 'rgba(154,167,182,0.25)' } },
        { stroke: '#9aa7b6', size: 64, grid: { stroke: 'rgba(154,167,182,0.12)', width: 1 }, ticks: { stroke: 'rgba(154,167,182,0.25)' } },
      ],
      series: [
        { label: 'time', value: (u, v, si, di) => (di == null ? 'latest' : new Date(v * 1000).toLocaleTimeString()) },
        ...series.map((s) => ({
          label: s.label, stroke: s.color, width: s.dash ? 1.25 : 1.5, dash: s.dash ? [6, 4] : undefined,
          spanGaps: !!s.span, points: { show: false },
          // Without the cursor on the plot, the legend shows the latest value.
          value: (u, v, si, di) => (di == null ? fmtVal(latest(u.data[si])) : v == null ? '—' : fmtVal(v)),
        })),
      ],
      hooks: {
        drawClear: [(u) => shadeAlarms(u, live)],
      },
    };
    const data = [[], ...series.map(() => [])];
    const u = new uPlot(opts, data, box);
    const p = { unit, el, box, cap, u, series, sig, bufs: null, n: 0, shown: false };
    box.addEventListener('mouseenter', () => { this.hovered = p; el.classList.add('held'); cap.lastChild.textContent = 'held while the pointer is here'; });
    box.addEventListener('mouseleave', () => { if (this.hovered === p) this.hovered = null; el.classList.remove('held'); cap.lastChild.textContent = ''; this.drawPanel(p, Date.now() / 1000); });
    return p;
  }

  resize() {
    for (const p of this.panels.values()) {
      const w = p.box.clientWidth;
      if (w > 0 && Math.abs(w - p.u.width) > 2) p.u.setSize({ width: w, height: 170 });
    }
  }

  // Redraw every panel but the one held under the pointer, unless that one
  // has shown nothing yet (a pointer resting where a panel appears would
  // otherwise hold it blank).
  draw(now) {
    for (const p of this.panels.values()) if (p !== this.hovered || !p.shown) this.drawPanel(p, now);
  }

  drawPanel(p, now) {
    const live = this.live;
    const w = live.width();
    const b1 = Math.floor(now / w);
    // The window, or less while the page has seen less (at least a minute):
    // a plot opened without history is not a sliver at its right edge.
    let first = Infinity;
    for (const s of p.series) {
      const r = s.ring();
      if (r && r.size) first = Math.min(first, r.idx[(r.head + r.cap - r.size) % r.cap]);
    }
    const full = b1 - Math.round(live.windowS / w) + 1;
    const b0 = Math.max(full, Math.min(first - 1, b1 - Math.ceil(60 / w)));
    const n = b1 - b0 + 1;
    if (!p.bufs || p.n !== n) {
      p.bufs = [new Array(n), ...p.series.map(() => new Array(n))];
      p.n = n;
    }
    const xs = p.bufs[0];
    for (let i = 0; i < n; i++) xs[i] = (b0 + i + 0.5) * w;
    p.series.forEach((s, k) => {
      const ys = p.bufs[k + 1];
      ys.fill(undefined);
      const ring = s.ring();
      if (!ring) return;
      ring.forEachFrom(b0, (b, v) => { const i = b - b0; if (i >= 0 && i < n) { ys[i] = v; p.shown = true; } });
    });
    p.u.setData(p.bufs);
  }
}

// A reading as the plots and tables show it: enough digits, no more.
export function fmtVal(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 10) return v.toFixed(2);
  return v.toFixed(3);
}

function latest(ys) {
  if (!ys) return null;
  for (let i = ys.length - 1; i >= 0; i--) if (ys[i] != null) return ys[i];
  return null;
}

// Shade the time spans of alarms (active ones up to now) behind the lines.
function shadeAlarms(u, live) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const xmin = u.scales.x.min, xmax = u.scales.x.max;
  if (xmin == null || xmax == null) return;
  ctx.save();
  for (const s of live.spans) {
    const t1 = s.t1 === null ? xmax : s.t1;
    if (t1 < xmin || s.t0 > xmax) continue;
    const x0 = Math.max(left, u.valToPos(Math.max(s.t0, xmin), 'x', true));
    const x1 = Math.min(left + width, u.valToPos(Math.min(t1, xmax), 'x', true));
    ctx.fillStyle = s.severity === 'warning' ? 'rgba(242,177,52,0.16)' : 'rgba(224,72,72,0.20)';
    ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
  }
  ctx.restore();
}
