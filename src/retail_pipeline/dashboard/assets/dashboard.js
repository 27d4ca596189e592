/* Offline sales dashboard: filters, exact aggregation and small SVG charts. No libraries, no network.
 *
 * Money arrives as integers of 10^-money_scale pounds and is summed as integers (exact while below
 * 2^53, checked); it is rounded to pennies only for display. Headline definitions follow the marts:
 * net revenue = gross sales + shipping + cancellations + adjustments; an order is an invoice with a
 * gross-sales line; average order value = gross sales / orders; cancellation rate = -cancellations /
 * gross sales.
 */
(function () {
  'use strict';

  const DATA = JSON.parse(document.getElementById('dashboard-data').textContent);
  const SCALE = Math.pow(10, DATA.money_scale);
  const DAYS = DATA.days;
  const COUNTRIES = DATA.countries;
  const INV = DATA.invoices;
  const PD = DATA.product_days;
  const N_INV = INV.day.length;
  const INVOICE_ID = INV.invoice || null; // absent when every row is a different invoice
  const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const SEGMENT_ORDER = ['Champions', 'Loyal', 'Potential loyalist', 'New', 'Needs attention', 'At risk',
    'Hibernating', 'Lost'];
  const SEGMENT_COLOURS = {
    'Champions': '#1d4ed8', 'Loyal': '#2563eb', 'Potential loyalist': '#60a5fa', 'New': '#38bdf8',
    'Needs attention': '#f59e0b', 'At risk': '#f97316', 'Hibernating': '#a8a29e', 'Lost': '#78716c'
  };
  const ABC_COLOURS = { A: '#1d4ed8', B: '#60a5fa', C: '#cbd5e1' };
  const OUTCOME_COLOURS = { loaded: '#16a34a', duplicate: '#f59e0b', quarantined: '#dc2626', rejected: '#7f1d1d' };

  // ---------- calendar: day index -> month index
  const MONTHS = [];
  const DAY_MONTH = new Int32Array(DAYS.length);
  const DAY_TIME = DAYS.map(function (d) { return Date.parse(d + 'T00:00:00Z'); });
  DAYS.forEach(function (d, i) {
    const m = d.slice(0, 7);
    if (!MONTHS.length || MONTHS[MONTHS.length - 1] !== m) MONTHS.push(m);
    DAY_MONTH[i] = MONTHS.length - 1;
  });
  const MONTH_FIRST_DAY = MONTHS.map(function () { return -1; }), MONTH_LAST_DAY = MONTHS.map(function () { return -1; });
  DAYS.forEach(function (d, i) {
    const m = DAY_MONTH[i];
    if (MONTH_FIRST_DAY[m] < 0) MONTH_FIRST_DAY[m] = i;
    MONTH_LAST_DAY[m] = i;
  });
  const N_CUSTOMERS = DATA.customer_segment.length;

  // ---------- exact money
  function checkSafe(n) {
    if (!Number.isSafeInteger(n)) throw new Error('money total beyond exact integer range: ' + n);
    return n;
  }
  function roundDiv(n, d) { // n / d rounded half away from zero, integers in and out
    const q = Math.floor((2 * Math.abs(n) + d) / (2 * d));
    return n < 0 ? -q : q;
  }
  function group3(s) { return s.replace(/\B(?=(\d{3})+(?!\d))/g, ','); }
  function pennies(units) { return roundDiv(units, SCALE / 100); }
  function money(units) {
    const p = pennies(units);
    const a = Math.abs(p);
    return (p < 0 ? '−£' : '£') + group3(String(Math.floor(a / 100))) + '.' + String(a % 100).padStart(2, '0');
  }
  function moneyShort(units) {
    const v = units / SCALE, a = Math.abs(v), sign = v < 0 ? '−' : '';
    if (a >= 1e6) return sign + '£' + (a / 1e6).toFixed(a >= 1e7 ? 1 : 2).replace(/\.?0+$/, '') + 'M';
    if (a >= 1e3) return sign + '£' + (a / 1e3).toFixed(a >= 1e4 ? 0 : 1).replace(/\.0$/, '') + 'k';
    return sign + '£' + a.toFixed(0);
  }
  function exact(units) { // '22075976.06': all digits, at least two decimals (as status.format_money)
    const a = Math.abs(units), digits = DATA.money_scale;
    let frac = String(a % SCALE).padStart(digits, '0').replace(/0+$/, '');
    if (frac.length < 2) frac = frac.padEnd(2, '0');
    return (units < 0 ? '-' : '') + String(Math.floor(a / SCALE)) + '.' + frac;
  }
  function parseUnits(text) { // exact decimal string -> integer units, no float on the way
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text).trim());
    if (!m) throw new Error('not a decimal: ' + text);
    const frac = (m[3] || '').padEnd(DATA.money_scale, '0');
    if (frac.length > DATA.money_scale && /[1-9]/.test(frac.slice(DATA.money_scale))) throw new Error('too many decimals: ' + text);
    const v = Number(m[2]) * SCALE + Number(frac.slice(0, DATA.money_scale));
    return checkSafe(m[1] ? -v : v);
  }
  function int(n) { return group3(String(n)); }
  function pct(num, den, places) {
    if (!den) return '–';
    return (100 * num / den).toFixed(places === undefined ? 1 : places) + '%';
  }
  function monthLabel(m, withYear) {
    const name = MONTH_NAMES[Number(m.slice(5, 7)) - 1];
    return withYear ? name + ' ' + m.slice(0, 4) : name;
  }
  function dayLabel(d) { return Number(d.slice(8, 10)) + ' ' + monthLabel(d.slice(0, 7), true); }

  // ---------- state and filters
  const state = { from: 0, to: DAYS.length - 1, country: -1 };
  const el = {
    from: document.getElementById('date-from'), to: document.getElementById('date-to'),
    country: document.getElementById('country'), reset: document.getElementById('reset'),
    subtitle: document.getElementById('subtitle'), footer: document.getElementById('footer'),
    tooltip: document.getElementById('tooltip')
  };

  function dayIndexAtOrAfter(iso) {
    for (let i = 0; i < DAYS.length; i++) if (DAYS[i] >= iso) return i;
    return DAYS.length;
  }
  function dayIndexAtOrBefore(iso) {
    for (let i = DAYS.length - 1; i >= 0; i--) if (DAYS[i] <= iso) return i;
    return -1;
  }
  function setupFilters() {
    if (DAYS.length) {
      for (const input of [el.from, el.to]) { input.min = DAYS[0]; input.max = DAYS[DAYS.length - 1]; }
    }
    COUNTRIES.forEach(function (c, i) {
      const o = document.createElement('option');
      o.value = String(i); o.textContent = c;
      el.country.appendChild(o);
    });
    el.from.addEventListener('change', function () {
      state.from = el.from.value ? dayIndexAtOrAfter(el.from.value) : 0; update();
    });
    el.to.addEventListener('change', function () {
      state.to = el.to.value ? dayIndexAtOrBefore(el.to.value) : DAYS.length - 1; update();
    });
    el.country.addEventListener('change', function () {
      state.country = el.country.value === '' ? -1 : Number(el.country.value); update();
    });
    el.reset.addEventListener('click', function () {
      state.from = 0; state.to = DAYS.length - 1; state.country = -1; update();
    });
  }
  function syncFilters() {
    el.from.value = DAYS[state.from] || '';
    el.to.value = DAYS[state.to] || '';
    el.country.value = state.country < 0 ? '' : String(state.country);
  }
  function setCountry(i) { state.country = state.country === i ? -1 : i; update(); }
  function setMonth(m) {
    const first = DAYS.findIndex(function (d) { return d.slice(0, 7) === m; });
    let last = first;
    while (last + 1 < DAYS.length && DAYS[last + 1].slice(0, 7) === m) last++;
    if (first >= 0) { state.from = first; state.to = last; update(); }
  }

  // ---------- aggregation over the selection
  function aggregate() {
    const from = state.from, to = state.to, country = state.country;
    const inDays = function (d) { return d >= from && d <= to; };
    const daily = new Map();      // day -> {net, orders}
    const monthly = new Map();    // month -> {net, orders}
    const byCountry = new Map();  // country -> {net, orders}  (date range only)
    const orders = new Set(), customers = new Set(), countriesSeen = new Set();
    let net = 0, gross = 0, cancel = 0, items = 0, cancelled = 0;
    const months = MONTHS.length;
    const active = new Uint8Array(Math.max(1, N_CUSTOMERS * months));
    const segCustomers = new Map(), segRevenue = new Map();

    for (let i = 0; i < N_INV; i++) {
      const d = INV.day[i];
      if (!inDays(d)) continue;
      const c = INV.country[i], isOrder = INV.order[i] === 1;
      let bc = byCountry.get(c);
      if (!bc) { bc = { net: 0, orders: new Set() }; byCountry.set(c, bc); }
      bc.net += INV.net[i];
      if (isOrder) bc.orders.add(INVOICE_ID ? INVOICE_ID[i] : i);
      if (country >= 0 && c !== country) continue;

      net += INV.net[i]; gross += INV.gross[i]; cancel += INV.cancel[i]; items += INV.items[i];
      if (INV.cancellation[i] === 1) cancelled++;
      let dd = daily.get(d);
      if (!dd) { dd = { net: 0, orders: 0 }; daily.set(d, dd); }
      dd.net += INV.net[i];
      const m = DAY_MONTH[d];
      let mm = monthly.get(m);
      if (!mm) { mm = { net: 0, orders: 0 }; monthly.set(m, mm); }
      mm.net += INV.net[i];
      const cust = INV.customer[i];
      if (cust >= 0) {
        const seg = DATA.customer_segment[cust];
        if (seg >= 0) segRevenue.set(seg, (segRevenue.get(seg) || 0) + INV.net[i]);
      }
      const invoiceId = INVOICE_ID ? INVOICE_ID[i] : i;
      if (isOrder && !orders.has(invoiceId)) {
        orders.add(invoiceId); dd.orders++; mm.orders++; countriesSeen.add(c);
        if (cust >= 0) {
          customers.add(cust);
          active[cust * months + m] = 1;
        }
      }
    }
    for (const cust of customers) {
      const seg = DATA.customer_segment[cust];
      if (seg >= 0) segCustomers.set(seg, (segCustomers.get(seg) || 0) + 1);
    }

    // cohorts: first order month in the selection, then the months after it
    const firstMonth = DAY_MONTH[Math.min(Math.max(from, 0), DAYS.length - 1)] || 0;
    const lastMonth = DAY_MONTH[Math.max(Math.min(to, DAYS.length - 1), 0)] || 0;
    const cohortSize = new Map(), cohortActive = new Map();
    for (const cust of customers) {
      let first = -1;
      for (let m = firstMonth; m <= lastMonth; m++) {
        if (!active[cust * months + m]) continue;
        if (first < 0) { first = m; cohortSize.set(m, (cohortSize.get(m) || 0) + 1); }
        const key = first * months + (m - first);
        cohortActive.set(key, (cohortActive.get(key) || 0) + 1);
      }
    }

    // products
    const prodNet = new Map();
    if (from <= to && DAYS.length) {
      for (let i = PD.day_start[Math.max(0, from)], end = PD.day_start[Math.min(to, DAYS.length - 1) + 1]; i < end; i++) {
        if (country >= 0 && PD.country[i] !== country) continue;
        const p = PD.product[i];
        prodNet.set(p, (prodNet.get(p) || 0) + PD.net[i]);
      }
    }

    checkSafe(net); checkSafe(gross); checkSafe(cancel);
    return {
      net: net, gross: gross, cancel: cancel, items: items, orders: orders.size, customers: customers.size,
      cancelled: cancelled, countries: countriesSeen.size, daily: daily, monthly: monthly, byCountry: byCountry,
      segCustomers: segCustomers, segRevenue: segRevenue, cohortSize: cohortSize, cohortActive: cohortActive,
      firstMonth: firstMonth, lastMonth: lastMonth, prodNet: prodNet
    };
  }

  // ---------- SVG helpers
  const NS = 'http://www.w3.org/2000/svg';
  function node(tag, attrs, parent, textContent) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (textContent !== undefined) e.textContent = textContent;
    if (parent) parent.appendChild(e);
    return e;
  }
  function frame(container) {
    container.textContent = '';
    const width = Math.max(280, container.clientWidth), height = container.clientHeight || 260;
    const card = container.closest('.card'), title = card ? card.querySelector('h2') : null;
    const svg = node('svg', { width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, role: 'img',
      'aria-label': title ? title.textContent : null }, container);
    return { svg: svg, width: width, height: height };
  }
  function empty(f, message) {
    node('text', { x: f.width / 2, y: f.height / 2, 'text-anchor': 'middle', class: 'empty' }, f.svg,
      message || 'No data in the selection');
  }
  function niceStep(range, count) {
    const raw = range / Math.max(1, count), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
  }
  function ticks(lo, hi, count) {
    if (hi === lo) { hi = lo + 1; }
    const step = niceStep(hi - lo, count);
    const start = Math.floor(lo / step) * step, end = Math.ceil(hi / step) * step;
    const out = [];
    for (let v = start; v <= end + step / 2; v += step) out.push(Math.abs(v) < step / 1e6 ? 0 : v);
    return out;
  }
  function linear(d0, d1, r0, r1) {
    const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
    return function (v) { return r0 + (v - d0) * k; };
  }
  function truncate(s, chars) { return s.length > chars ? s.slice(0, Math.max(1, chars - 1)) + '…' : s; }
  function tip(e, text) { e.setAttribute('data-tip', text); return e; }

  // ---------- charts
  function renderDaily(container, agg) {
    const f = frame(container);
    const days = Array.from(agg.daily.keys()).sort(function (a, b) { return a - b; });
    if (!days.length) return empty(f);
    const m = { l: 62, r: 16, t: 12, b: 28 };
    const values = days.map(function (d) { return agg.daily.get(d).net / SCALE; });
    // a few extreme days (a manual adjustment of millions) would flatten every other day: cut the axis
    // at four times the 95th percentile and mark the days beyond it
    let lo = Math.min(0, Math.min.apply(null, values)), hi = Math.max(0, Math.max.apply(null, values));
    const sortedAbs = values.map(Math.abs).sort(function (a, b) { return a - b; });
    const cap = 4 * sortedAbs[Math.floor(0.95 * (sortedAbs.length - 1))];
    const cut = values.length >= 20 && cap > 0 && (hi > cap || -lo > cap);
    if (cut) { lo = Math.max(lo, -cap); hi = Math.min(hi, cap); }
    const yt = ticks(lo, hi, 5);
    const t0 = DAY_TIME[days[0]], t1 = DAY_TIME[days[days.length - 1]];
    const x = linear(t0, t1 === t0 ? t0 + 864e5 : t1, m.l, f.width - m.r);
    const yRaw = linear(yt[0], yt[yt.length - 1], f.height - m.b, m.t);
    const y = function (v) { return yRaw(Math.max(yt[0], Math.min(yt[yt.length - 1], v))); };
    const axis = node('g', { class: 'axis' }, f.svg);
    yt.forEach(function (v) {
      node('line', { x1: m.l, x2: f.width - m.r, y1: y(v), y2: y(v), class: 'grid-line' }, axis);
      node('text', { x: m.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, axis, moneyShort(v * SCALE));
    });
    // month ticks
    const firstMonth = DAY_MONTH[days[0]];
    let lastLabelX = -1e9;
    for (let mi = firstMonth; mi <= DAY_MONTH[days[days.length - 1]]; mi++) {
      const t = Date.parse(MONTHS[mi] + '-01T00:00:00Z');
      if (t < t0 && mi !== firstMonth) continue;
      const xx = x(Math.max(t, t0));
      if (xx - lastLabelX < 44) continue;
      lastLabelX = xx;
      node('line', { x1: xx, x2: xx, y1: f.height - m.b, y2: f.height - m.b + 5 }, axis);
      node('text', { x: xx, y: f.height - m.b + 17, 'text-anchor': 'middle' }, axis,
        monthLabel(MONTHS[mi], mi === firstMonth || MONTHS[mi].endsWith('-01')));
    }
    const pts = days.map(function (d, i) { return [x(DAY_TIME[d]), y(values[i])]; });
    const line = pts.map(function (p, i) { return (i ? 'L' : 'M') + p[0].toFixed(1) + ',' + p[1].toFixed(1); }).join('');
    const base = y(0).toFixed(1);
    node('path', { d: line + 'L' + pts[pts.length - 1][0].toFixed(1) + ',' + base + 'L' + pts[0][0].toFixed(1) + ',' + base + 'Z',
      fill: '#2563eb', 'fill-opacity': 0.12, class: 'mark' }, f.svg);
    node('path', { d: line, fill: 'none', stroke: '#2563eb', 'stroke-width': 1.6, 'stroke-linejoin': 'round', class: 'mark' }, f.svg);
    if (days.length < 40) {
      pts.forEach(function (p) { node('circle', { cx: p[0], cy: p[1], r: 2.5, fill: '#2563eb', class: 'mark' }, f.svg); });
    }
    node('line', { x1: m.l, x2: f.width - m.r, y1: y(0), y2: y(0), stroke: '#9ca3af' }, f.svg);
    if (cut) {
      let beyond = 0;
      days.forEach(function (d, i) {
        if (values[i] >= yt[0] && values[i] <= yt[yt.length - 1]) return;
        beyond++;
        const px = pts[i][0], py = pts[i][1], up = values[i] > 0;
        tip(node('path', { d: 'M' + (px - 5) + ',' + (py + (up ? 7 : -7)) + 'L' + (px + 5) + ',' + (py + (up ? 7 : -7)) + 'L' + px + ',' + py + 'Z',
          fill: up ? '#2563eb' : '#dc2626', class: 'mark' }, f.svg), dayLabel(DAYS[d]) + '\nNet revenue ' + money(agg.daily.get(d).net) + ' (off the axis)');
        node('text', { x: px + 8, y: py + (up ? 10 : -3), class: 'label-strong' }, f.svg, moneyShort(agg.daily.get(d).net));
      });
      node('text', { x: f.width - m.r, y: m.t - 2, 'text-anchor': 'end' }, f.svg,
        'axis cut at ' + moneyShort(yt[0] * SCALE) + ' … ' + moneyShort(yt[yt.length - 1] * SCALE) + ': ' + beyond +
        (beyond === 1 ? ' day' : ' days') + ' beyond (▲▼)');
    }
    // hover: nearest day
    const focus = node('g', { visibility: 'hidden' }, f.svg);
    const guide = node('line', { y1: m.t, y2: f.height - m.b, class: 'focus-line' }, focus);
    const dot = node('circle', { r: 4, fill: '#2563eb', stroke: '#fff', 'stroke-width': 2 }, focus);
    const overlay = node('rect', { x: m.l, y: m.t, width: f.width - m.l - m.r, height: f.height - m.t - m.b, fill: 'transparent', class: 'hover-overlay' }, f.svg);
    overlay.addEventListener('mousemove', function (ev) {
      const box = f.svg.getBoundingClientRect(), mx = ev.clientX - box.left;
      let best = 0;
      for (let i = 1; i < pts.length; i++) if (Math.abs(pts[i][0] - mx) < Math.abs(pts[best][0] - mx)) best = i;
      const d = days[best], v = agg.daily.get(d);
      focus.setAttribute('visibility', 'visible');
      guide.setAttribute('x1', pts[best][0]); guide.setAttribute('x2', pts[best][0]);
      dot.setAttribute('cx', pts[best][0]); dot.setAttribute('cy', pts[best][1]);
      showTip(dayLabel(DAYS[d]) + '\nNet revenue ' + money(v.net) + '\nOrders ' + int(v.orders), ev);
    });
    overlay.addEventListener('mouseleave', function () { focus.setAttribute('visibility', 'hidden'); hideTip(); });
  }

  function renderMonthly(container, agg) {
    const f = frame(container);
    const months = Array.from(agg.monthly.keys()).sort(function (a, b) { return a - b; });
    if (!months.length) return empty(f);
    const m = { l: 62, r: 10, t: 22, b: 34 };
    const vals = months.map(function (k) { return agg.monthly.get(k).net / SCALE; });
    const yt = ticks(Math.min(0, Math.min.apply(null, vals)), Math.max(0, Math.max.apply(null, vals)), 5);
    const y = linear(yt[0], yt[yt.length - 1], f.height - m.b, m.t);
    const axis = node('g', { class: 'axis' }, f.svg);
    yt.forEach(function (v) {
      node('line', { x1: m.l, x2: f.width - m.r, y1: y(v), y2: y(v), class: 'grid-line' }, axis);
      node('text', { x: m.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, axis, moneyShort(v * SCALE));
    });
    const band = (f.width - m.l - m.r) / months.length, bw = Math.max(2, Math.min(48, band * 0.7));
    const fromMonth = DAY_MONTH[state.from], toMonth = DAY_MONTH[state.to];
    const partial = function (mi) {
      return (mi === fromMonth && state.from > MONTH_FIRST_DAY[mi]) || (mi === toMonth && state.to < MONTH_LAST_DAY[mi]);
    };
    months.forEach(function (mi, i) {
      const v = agg.monthly.get(mi), cx = m.l + band * (i + 0.5), y0 = y(0), y1 = y(vals[i]);
      const bar = node('rect', { x: cx - bw / 2, y: Math.min(y0, y1), width: bw, height: Math.max(1, Math.abs(y1 - y0)), rx: 2,
        fill: vals[i] < 0 ? '#dc2626' : '#2563eb', 'fill-opacity': partial(mi) ? 0.45 : 1, class: 'mark clickable' }, f.svg);
      tip(bar, monthLabel(MONTHS[mi], true) + (partial(mi) ? ' (part of the month)' : '') +
        '\nNet revenue ' + money(v.net) + '\nOrders ' + int(v.orders));
      bar.addEventListener('click', function () { setMonth(MONTHS[mi]); });
      if (band > 34) {
        node('text', { x: cx, y: Math.min(y0, y1) - 5, 'text-anchor': 'middle' }, f.svg, moneyShort(v.net));
      }
      if (band > 26 || i % Math.ceil(26 / band) === 0) {
        node('text', { x: cx, y: f.height - m.b + 15, 'text-anchor': 'middle' }, axis, monthLabel(MONTHS[mi], false));
        if (i === 0 || MONTHS[mi].endsWith('-01')) {
          node('text', { x: cx, y: f.height - m.b + 28, 'text-anchor': 'middle', class: 'label-strong' }, axis, MONTHS[mi].slice(0, 4));
        }
      }
    });
  }

  /* Horizontal bars: rows [{label, value (units or count), text, colour, dim, onClick, tip, second, secondText}] */
  function hbars(container, rows, opts) {
    const f = frame(container);
    if (!rows.length) return empty(f);
    const labelW = Math.min(opts.labelWidth || 190, f.width * 0.38);
    const valueW = opts.valueWidth || 120;
    const m = { l: labelW + 8, r: valueW, t: opts.legend ? 22 : 4, b: 4 };
    const rowH = Math.min(opts.maxRow || 28, (f.height - m.t - m.b) / rows.length);
    const max = Math.max.apply(null, rows.map(function (r) { return Math.abs(r.value); }).concat([1]));
    const maxSecond = Math.max.apply(null, rows.map(function (r) { return r.second || 0; }).concat([1]));
    const w = f.width - m.l - m.r;
    if (opts.legend) {
      let lx = m.l;
      opts.legend.forEach(function (item) {
        node('rect', { x: lx, y: 4, width: 10, height: 10, rx: 2, fill: item[1] }, f.svg);
        const t = node('text', { x: lx + 14, y: 13 }, f.svg, item[0]);
        lx += 22 + item[0].length * 6.2;
        return t;
      });
    }
    rows.forEach(function (r, i) {
      const y0 = m.t + i * rowH, bh = opts.second ? rowH * 0.42 : rowH * 0.66;
      const g = node('g', { class: (r.dim ? 'dim' : '') + (r.onClick ? ' clickable' : '') }, f.svg);
      node('text', { x: labelW, y: y0 + rowH / 2 + 4, 'text-anchor': 'end', class: r.strong ? 'label-strong' : '' }, g,
        truncate(r.label, Math.floor(labelW / 6.3)));
      const bw = Math.max(1, w * Math.abs(r.value) / max);
      const bar = node('rect', { x: m.l, y: y0 + (rowH - (opts.second ? 2 * bh + 2 : bh)) / 2, width: bw, height: bh, rx: 2,
        fill: r.value < 0 ? '#dc2626' : r.colour, class: 'mark' }, g);
      if (opts.second) {
        node('rect', { x: m.l, y: +bar.getAttribute('y') + bh + 2, width: Math.max(1, w * r.second / maxSecond), height: bh, rx: 2,
          fill: opts.secondColour, class: 'mark' }, g);
      }
      node('text', { x: m.l + bw + 6, y: y0 + rowH / 2 + 4 }, g, r.text);
      const hit = node('rect', { x: 0, y: y0, width: f.width, height: rowH, fill: 'transparent' }, g);
      tip(hit, r.tip);
      if (r.onClick) hit.addEventListener('click', r.onClick);
    });
  }

  function renderCountries(container, agg) {
    const entries = Array.from(agg.byCountry.entries()).map(function (e) {
      return { c: e[0], net: e[1].net, orders: e[1].orders.size };
    }).sort(function (a, b) { return b.net - a.net || COUNTRIES[a.c].localeCompare(COUNTRIES[b.c]); });
    let shown = entries.slice(0, 10);
    if (state.country >= 0 && !shown.some(function (e) { return e.c === state.country; })) {
      const sel = entries.find(function (e) { return e.c === state.country; });
      if (sel) shown = shown.slice(0, 9).concat([sel]);
    }
    hbars(container, shown.map(function (e) {
      return {
        label: COUNTRIES[e.c], value: e.net, second: e.orders, colour: '#2563eb',
        text: moneyShort(e.net) + ' · ' + int(e.orders) + ' orders',
        dim: state.country >= 0 && e.c !== state.country, strong: e.c === state.country,
        tip: COUNTRIES[e.c] + '\nNet revenue ' + money(e.net) + '\nOrders ' + int(e.orders) + '\n(click to ' +
          (e.c === state.country ? 'clear the filter)' : 'filter)'),
        onClick: function () { setCountry(e.c); }
      };
    }), { labelWidth: 130, valueWidth: 150, second: true, secondColour: '#f59e0b',
      legend: [['Net revenue', '#2563eb'], ['Orders', '#f59e0b']] });
  }

  function renderProducts(container, agg) {
    const P = DATA.products;
    const top = Array.from(agg.prodNet.entries()).sort(function (a, b) {
      return b[1] - a[1] || (P.code[a[0]] < P.code[b[0]] ? -1 : 1);
    }).slice(0, 10);
    hbars(container, top.map(function (e) {
      const p = e[0], abc = P.abc[p] || 'C';
      return {
        label: P.name[p], value: e[1], colour: ABC_COLOURS[abc],
        text: moneyShort(e[1]), tip: P.name[p] + ' (' + P.code[p] + ')\nNet revenue ' + money(e[1]) +
          '\nABC class ' + abc + ' (rank ' + int(p + 1) + ' over the whole data)'
      };
    }), { labelWidth: 230, valueWidth: 70, legend: [['Class A', ABC_COLOURS.A], ['Class B', ABC_COLOURS.B], ['Class C', ABC_COLOURS.C]] });
  }

  function renderSegments(container, agg) {
    const names = DATA.segments.map(function (s, i) { return [s, i]; }).sort(function (a, b) {
      const ia = SEGMENT_ORDER.indexOf(a[0]), ib = SEGMENT_ORDER.indexOf(b[0]);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a[0].localeCompare(b[0]);
    });
    const total = agg.customers;
    hbars(container, names.filter(function (n) { return agg.segCustomers.get(n[1]); }).map(function (n) {
      const count = agg.segCustomers.get(n[1]), rev = agg.segRevenue.get(n[1]) || 0;
      return {
        label: n[0], value: count, colour: SEGMENT_COLOURS[n[0]] || '#64748b',
        text: int(count) + ' · ' + pct(count, total, 0) + ' · ' + moneyShort(rev),
        tip: n[0] + '\n' + int(count) + ' customers (' + pct(count, total) + ')\nNet revenue ' + money(rev)
      };
    }), { labelWidth: 130, valueWidth: 150 });
  }

  function heatColour(v) { // 0..1 -> light to dark blue
    const a = [239, 246, 255], b = [30, 64, 175], t = Math.sqrt(Math.max(0, Math.min(1, v)));
    return 'rgb(' + a.map(function (x, i) { return Math.round(x + (b[i] - x) * t); }).join(',') + ')';
  }

  function renderCohorts(container, agg) {
    const cohorts = Array.from(agg.cohortSize.keys()).sort(function (a, b) { return a - b; });
    container.style.height = Math.max(120, 30 + cohorts.length * 26) + 'px';
    const f = frame(container);
    if (!cohorts.length) return empty(f);
    const span = agg.lastMonth - cohorts[0] + 1;
    const m = { l: 118, r: 10, t: 22, b: 4 };
    const cw = (f.width - m.l - m.r) / span, ch = Math.min(26, (f.height - m.t - m.b) / cohorts.length);
    for (let k = 0; k < span; k++) {
      node('text', { x: m.l + cw * (k + 0.5), y: 13, 'text-anchor': 'middle' }, f.svg, k === 0 ? 'M0' : '+' + k);
    }
    cohorts.forEach(function (c, r) {
      const size = agg.cohortSize.get(c), y0 = m.t + r * ch;
      node('text', { x: m.l - 8, y: y0 + ch / 2 + 4, 'text-anchor': 'end' }, f.svg, monthLabel(MONTHS[c], true) + '  (' + int(size) + ')');
      for (let k = 0; c + k <= agg.lastMonth; k++) {
        const n = agg.cohortActive.get(c * MONTHS.length + k) || 0, v = n / size;
        const cell = node('rect', { x: m.l + k * cw + 1, y: y0 + 1, width: Math.max(1, cw - 2), height: Math.max(1, ch - 2), rx: 2,
          fill: heatColour(v), class: 'mark', 'data-cohort': MONTHS[c], 'data-offset': k, 'data-active': n, 'data-size': size }, f.svg);
        tip(cell, 'Cohort ' + monthLabel(MONTHS[c], true) + ' (' + int(size) + ' customers)\n' +
          monthLabel(MONTHS[c + k], true) + ': ' + int(n) + ' ordered (' + pct(n, size) + ')');
        if (cw > 30 && ch > 13) {
          node('text', { x: m.l + (k + 0.5) * cw, y: y0 + ch / 2 + 4, 'text-anchor': 'middle',
            class: 'cell-text' + (v > 0.3 ? ' on-dark' : '') }, f.svg, k === 0 ? '100%' : pct(n, size, 0));
        }
      }
    });
  }

  function renderQuality(container) {
    const batches = new Map();
    DATA.quality.forEach(function (q) {
      let b = batches.get(q.batch_id);
      if (!b) { b = { q: q, parts: [] }; batches.set(q.batch_id, b); }
      b.parts.push(q);
    });
    const list = Array.from(batches.values());
    container.style.height = Math.max(90, 30 + list.length * 52) + 'px';
    const f = frame(container);
    if (!list.length) return empty(f, 'No batches in the warehouse');
    const m = { l: 210, r: 16, t: 24, b: 4 };
    const w = f.width - m.l - m.r, rowH = 52;
    let lx = m.l;
    [['loaded', 'Loaded'], ['duplicate', 'Duplicate rows'], ['quarantined', 'Quarantined'], ['rejected', 'Rejected file']].forEach(function (o) {
      node('rect', { x: lx, y: 4, width: 10, height: 10, rx: 2, fill: OUTCOME_COLOURS[o[0]] }, f.svg);
      node('text', { x: lx + 14, y: 13 }, f.svg, o[1]);
      lx += 28 + o[1].length * 6.2;
    });
    list.forEach(function (b, i) {
      const y0 = m.t + i * rowH, read = b.q.rows_read || 0;
      const name = (b.q.source_uri || '').split('/').pop() || b.q.batch_id;
      node('text', { x: m.l - 10, y: y0 + 16, 'text-anchor': 'end', class: 'label-strong' }, f.svg, truncate(name, 30));
      node('text', { x: m.l - 10, y: y0 + 31, 'text-anchor': 'end' }, f.svg, 'batch ' + b.q.batch_id.slice(0, 12) + ' · ' + b.q.state);
      let x = m.l;
      const parts = b.parts.slice().sort(function (p1, p2) {
        const order = ['loaded', 'duplicate', 'quarantined', 'rejected'];
        return order.indexOf(p1.outcome) - order.indexOf(p2.outcome) || p1.reason.localeCompare(p2.reason);
      });
      parts.forEach(function (p) {
        if (!p.row_count) return;
        const pw = read ? Math.max(2, w * p.row_count / read) : 0;
        const seg = node('rect', { x: x, y: y0 + 4, width: pw, height: 18, fill: OUTCOME_COLOURS[p.outcome] || '#64748b',
          stroke: '#fff', 'stroke-width': 1, class: 'mark' }, f.svg);
        tip(seg, name + '\n' + p.outcome + ' · ' + p.reason.replace(/_/g, ' ') + '\n' + int(p.row_count) + ' rows (' +
          pct(p.row_count, read, 2) + ' of ' + int(read) + ' read)');
        x += pw;
      });
      const issues = parts.filter(function (p) {
        return (p.outcome === 'quarantined' || p.outcome === 'rejected') && p.row_count;
      }).map(function (p) {
        return p.reason.replace(/_/g, ' ') + ' ' + int(p.row_count);
      });
      node('text', { x: m.l, y: y0 + 38 }, f.svg, 'read ' + int(read) + ' · loaded ' + int(b.q.rows_loaded) + ' · duplicates ' +
        int(b.q.rows_duplicate) + ' · quarantined ' + int(b.q.rows_quarantined) +
        (issues.length ? '   —   ' + truncate(issues.join(', '), Math.floor(w / 6.5) - 60) : ''));
    });
  }

  // ---------- headline figures
  function setKpi(name, value, sub, exactValue) {
    const box = document.querySelector('[data-kpi="' + name + '"]');
    box.querySelector('.value').textContent = value;
    box.querySelector('.sub').textContent = sub;
    box.setAttribute('data-exact', exactValue);
  }
  function renderKpis(agg) {
    setKpi('net_revenue', money(agg.net), 'gross sales ' + money(agg.gross), exact(agg.net));
    setKpi('orders', int(agg.orders), int(agg.items) + ' items sold', String(agg.orders));
    setKpi('customers', int(agg.customers), 'in ' + int(agg.countries) + (agg.countries === 1 ? ' country' : ' countries'),
      String(agg.customers));
    const aov = agg.orders ? roundDiv(agg.gross, agg.orders * (SCALE / 100)) : null;
    setKpi('average_order_value', aov === null ? '–' : money(aov * (SCALE / 100)), 'gross sales / orders',
      aov === null ? '' : exact(aov * (SCALE / 100)));
    setKpi('cancellation_rate', pct(-agg.cancel, agg.gross), money(-agg.cancel) + ' · ' + int(agg.cancelled) + ' invoices',
      agg.gross ? String(-agg.cancel / agg.gross) : '');
  }

  // ---------- tooltip
  function showTip(text, ev) {
    el.tooltip.textContent = text;
    el.tooltip.hidden = false;
    const w = el.tooltip.offsetWidth, h = el.tooltip.offsetHeight;
    let x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + w > window.innerWidth - 8) x = ev.clientX - w - 14;
    if (y + h > window.innerHeight - 8) y = ev.clientY - h - 14;
    el.tooltip.style.left = x + 'px'; el.tooltip.style.top = y + 'px';
  }
  function hideTip() { el.tooltip.hidden = true; }
  document.addEventListener('mousemove', function (ev) {
    const t = ev.target && ev.target.closest ? ev.target.closest('[data-tip]') : null;
    if (t) showTip(t.getAttribute('data-tip'), ev);
    else if (!(ev.target && ev.target.classList && ev.target.classList.contains('hover-overlay'))) hideTip();
  });

  // ---------- page
  function renderFooter(allNet) {
    const totals = DATA.mart_totals;
    el.footer.textContent = '';
    const p = document.createElement('p');
    p.textContent = (DATA.data_as_of ? 'Data as of ' + DATA.data_as_of + ' (the newest file the marts count). ' : '') +
      'Built ' + DATA.generated_at + ' from ' + DATA.warehouse + ' (its marts). ' +
      'Net revenue = gross sales + shipping + cancellations + adjustments; an order is an invoice with a gross-sales line. ';
    const check = document.createElement('span');
    if (totals.net_revenue !== null) {
      const same = parseUnits(totals.net_revenue) === allNet;
      check.className = same ? 'ok' : 'bad';
      check.textContent = same ? 'Unfiltered net revenue matches mart_revenue_monthly (' + exact(allNet) + ').'
        : 'Unfiltered net revenue ' + exact(allNet) + ' differs from mart_revenue_monthly ' + totals.net_revenue + '.';
      if (!same) console.error(check.textContent);
    }
    p.appendChild(check);
    el.footer.appendChild(p);
  }

  let last = null;
  function renderAll() {
    const agg = last;
    renderKpis(agg);
    const charts = {
      daily: renderDaily, monthly: renderMonthly, countries: renderCountries, products: renderProducts,
      segments: renderSegments, cohorts: renderCohorts, quality: renderQuality
    };
    document.querySelectorAll('[data-chart]').forEach(function (c) { charts[c.getAttribute('data-chart')](c, agg); });
  }
  function update() {
    if (state.from > state.to) { const t = state.from; state.from = state.to; state.to = t; }
    syncFilters();
    last = aggregate();
    const range = DAYS.length ? dayLabel(DAYS[Math.min(state.from, DAYS.length - 1)]) + ' – ' +
      dayLabel(DAYS[Math.max(state.to, 0)]) : 'no data';
    el.subtitle.textContent = range + ' · ' + (state.country >= 0 ? COUNTRIES[state.country] : 'all countries') +
      ' · ' + int(last.orders) + ' orders';
    renderAll();
  }

  setupFilters();
  update();
  renderFooter(last.net);
  let resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(renderAll, 120);
  });
  document.body.setAttribute('data-ready', 'true');
})();
