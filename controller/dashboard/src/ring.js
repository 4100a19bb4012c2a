// A channel's recent past in a fixed number of time buckets (mean, min, max),
// so that a day of samples at any rate takes the same memory as a minute.

export const BUCKETS = 1200;   // slots across the widest window a plot shows

export class BucketRing {
  // width: seconds a bucket covers; cap: how many buckets are kept.
  constructor(width, cap = BUCKETS + 64) {
    this.width = width;
    this.cap = cap;
    this.idx = new Float64Array(cap);   // bucket number (floor(t / width))
    this.sum = new Float64Array(cap);
    this.n = new Uint32Array(cap);      // valid samples in the bucket
    this.nan = new Uint8Array(cap);     // a failed reading fell in it
    this.min = new Float64Array(cap);
    this.max = new Float64Array(cap);
    this.head = 0;                      // next slot to write
    this.size = 0;
    this.lastT = -Infinity;
    this.lastV = null;
  }

  // Add one sample (t in Unix seconds, v a number or null for a failed reading).
  // Samples older than the newest bucket are dropped: the feed is in time order.
  add(t, v) {
    if (!Number.isFinite(t)) return;
    const b = Math.floor(t / this.width);
    let s;
    if (this.size > 0 && this.idx[(this.head + this.cap - 1) % this.cap] === b) {
      s = (this.head + this.cap - 1) % this.cap;
    } else {
      if (this.size > 0 && b < this.idx[(this.head + this.cap - 1) % this.cap]) return;
      s = this.head;
      this.head = (this.head + 1) % this.cap;
      if (this.size < this.cap) this.size++;
      this.idx[s] = b; this.sum[s] = 0; this.n[s] = 0; this.nan[s] = 0;
      this.min[s] = Infinity; this.max[s] = -Infinity;
    }
    if (t >= this.lastT) { this.lastT = t; this.lastV = v; }
    if (v === null || v === undefined || !Number.isFinite(v)) { this.nan[s] = 1; return; }
    this.sum[s] += v; this.n[s]++;
    if (v < this.min[s]) this.min[s] = v;
    if (v > this.max[s]) this.max[s] = v;
  }

  // Add a decimated point from the daemon's history (mean, min, max of a span).
  addBucket(t, mean, lo, hi) {
    if (mean === null || mean === undefined) { this.add(t, null); return; }
    this.add(t, mean);
    const s = (this.head + this.cap - 1) % this.cap;
    if (lo !== null && lo !== undefined && lo < this.min[s]) this.min[s] = lo;
    if (hi !== null && hi !== undefined && hi > this.max[s]) this.max[s] = hi;
  }

  // Call fn(bucket, mean or null) for each bucket from bucket number b0 on, oldest first.
  forEachFrom(b0, fn) {
    for (let k = 0; k < this.size; k++) {
      const s = (this.head + this.cap - this.size + k) % this.cap;
      const b = this.idx[s];
      if (b < b0) continue;
      fn(b, this.n[s] ? this.sum[s] / this.n[s] : (this.nan[s] ? null : undefined));
    }
  }

  // A new ring of another bucket width holding what this one has (coarser or finer).
  rebucket(width) {
    const r = new BucketRing(width, this.cap);
    this.forEachFrom(-Infinity, (b, v) => r.add((b + 0.5) * this.width, v === undefined ? null : v));
    r.lastT = this.lastT; r.lastV = this.lastV;
    return r;
  }

  // Bytes held by the typed arrays: fixed for the ring's life.
  bytes() {
    return this.cap * (8 * 4 + 4 + 1);
  }
}
