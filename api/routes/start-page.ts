// The dashboard at `/`: a static page (no framework, no server state) that asks for a token, then shows the
// usage summary, daily active users, a team or service breakdown, the latest logs of a chosen severity and an
// export button, all through the public API.
export const START_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tally</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{font:15px system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1d2430}
h1{margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
form{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.85rem;color:#4a5568}
input,button{font:inherit;padding:.3rem .5rem}button{cursor:pointer}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{flex:1;min-width:10rem;border:1px solid #d8dee9;border-radius:8px;padding:.8rem}
.card b{display:block;font-size:1.8rem}.muted{color:#718096;font-size:.85rem}
#chart{width:100%;height:auto;border:1px solid #d8dee9;border-radius:8px}
#chart text{font:11px system-ui,sans-serif;fill:#4a5568}#chart .axis{stroke:#a0aec0;stroke-width:1}#chart .grid{stroke:#edf2f7;stroke-width:1}
table{border-collapse:collapse;width:100%;font-size:.85rem}td,th{border-bottom:1px solid #e2e8f0;padding:.3rem;text-align:left;vertical-align:top}
#status{min-height:1.2rem}.error{color:#b42318}
</style></head>
<body><h1>Tally</h1>
<p class="muted">Usage and system-log reports. API reference: <a href="/docs">/docs</a> (<a href="/openapi.json">OpenAPI 3.1</a>).</p>
<form id="f">
<label>Token (Bearer JWT or API key)<input id="token" type="password" size="40" required autocomplete="off"></label>
<label>From<input id="start" type="date" required></label>
<label>To<input id="end" type="date" required></label>
<button id="show">Show</button></form>
<p id="status" role="status"></p>
<div class="cards">
<div class="card"><span class="muted">Total users</span><b id="total_users">–</b></div>
<div class="card"><span class="muted">Active users</span><b id="active_users">–</b></div>
<div class="card"><span class="muted">Sessions</span><b id="total_sessions">–</b></div>
</div>
<h2>Daily active users</h2>
<svg id="chart" viewBox="0 0 640 220" aria-label="daily active users, by UTC day"></svg>
<h2>Breakdown by <select id="group" aria-label="break down by"><option value="team">team</option><option value="service">service</option></select></h2>
<p class="muted">Per calendar month of the range (months clipped to it): distinct users and sessions.</p>
<table><thead><tr><th>Month</th><th id="group-name">Team</th><th>Active users</th><th>Sessions</th></tr></thead><tbody id="breakdown"></tbody></table>
<h2>Latest logs <select id="severity" aria-label="severity"><option value="error">errors</option><option value="warning">warnings</option><option value="info">info</option><option value="">all</option></select></h2>
<table><thead><tr><th>Time (UTC)</th><th>Severity</th><th>Service</th><th>Message</th></tr></thead><tbody id="errors"></tbody></table>
<h2>Export</h2>
<button id="export" type="button">Export usage summary as CSV</button> <span id="export-status" class="muted"></span>
<h2>Scheduled exports</h2>
<table><thead><tr><th>Report</th><th>Format</th><th>Cadence</th><th>Next run (UTC)</th></tr></thead><tbody id="schedules"></tbody></table>
<script>
const $ = (id) => document.getElementById(id);
const day = (ms) => new Date(ms).toISOString().slice(0, 10);
const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
// The last 30 days, today included (today's numbers grow as events arrive).
$('start').value = day(today - 29 * 864e5);
$('end').value = day(today);
$('token').value = sessionStorage.getItem('tally-token') || '';

function headers() {
  const t = $('token').value.trim();
  return t.startsWith('tally_') ? { 'X-API-Key': t } : { Authorization: 'Bearer ' + t };
}
async function api(path, init) {
  const res = await fetch(path, { ...init, headers: { ...headers(), ...(init && init.headers) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(res.status + ' ' + (body.message || body.error || res.statusText));
  return body;
}
function text(tag, value) { const el = document.createElement(tag); el.textContent = value; return el; }

// A line of daily active users with labelled axes: counts on the left (0, half, max), dates below (first,
// middle, last day of the range), axis titles; each point names its day and count on hover.
function drawChart(rows) {
  const svg = $('chart');
  svg.replaceChildren();
  const ns = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, content) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (content !== undefined) e.textContent = content;
    return svg.appendChild(e);
  };
  const left = 56, right = 624, top = 12, bottom = 176;
  const max = Math.max(1, ...rows.map((r) => r.active_users));
  const x = (i) => (rows.length > 1 ? left + (i * (right - left)) / (rows.length - 1) : (left + right) / 2);
  const y = (v) => bottom - (v / max) * (bottom - top);
  for (const v of [0, Math.round(max / 2), max]) {
    el('line', { x1: left, x2: right, y1: y(v), y2: y(v), class: v === 0 ? 'axis' : 'grid' });
    el('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'y-label' }, v.toLocaleString('en'));
  }
  el('line', { x1: left, x2: left, y1: top, y2: bottom, class: 'axis' });
  const ticks = rows.length > 2 ? [0, Math.floor((rows.length - 1) / 2), rows.length - 1] : rows.map((_, i) => i);
  for (const i of ticks) {
    // The first and last labels lean inwards so that they stay inside the chart.
    const anchor = ticks.length > 1 && i === 0 ? 'start' : ticks.length > 1 && i === rows.length - 1 ? 'end' : 'middle';
    el('text', { x: x(i), y: bottom + 16, 'text-anchor': anchor, class: 'x-label' }, rows[i].period);
  }
  el('text', { x: (left + right) / 2, y: 214, 'text-anchor': 'middle' }, 'Day (UTC)');
  el('text', { x: 14, y: (top + bottom) / 2, 'text-anchor': 'middle', transform: 'rotate(-90 14 ' + (top + bottom) / 2 + ')' }, 'Active users');
  const points = rows.map((r, i) => [x(i), y(r.active_users)]);
  el('polyline', { points: points.map((p) => p.join(',')).join(' '), fill: 'none', stroke: '#2b6cb0', 'stroke-width': '2' });
  points.forEach(([px, py], i) => {
    const dot = el('circle', { cx: px, cy: py, r: '2.5', fill: '#2b6cb0', class: 'point' });
    dot.appendChild(document.createElementNS(ns, 'title')).textContent = rows[i].period + ': ' + rows[i].active_users;
  });
}

async function show() {
  sessionStorage.setItem('tally-token', $('token').value.trim());
  $('status').textContent = 'Loading…';
  $('status').className = '';
  const range = new URLSearchParams({ start_date: $('start').value, end_date: $('end').value });
  try {
    const summary = await api('/reports/usage-summary?' + range);
    for (const k of ['total_users', 'active_users', 'total_sessions']) $(k).textContent = summary[k].toLocaleString('en');
    const series = await api('/reports/usage-timeseries?' + range + '&interval=day');
    drawChart(series.rows);
    const group = $('group').value;
    $('group-name').textContent = group === 'team' ? 'Team' : 'Service';
    const parts = await api('/reports/usage-timeseries?' + range + '&interval=month&group_by=' + group);
    const breakdown = $('breakdown');
    breakdown.replaceChildren();
    for (const r of parts.rows) {
      const tr = document.createElement('tr');
      tr.append(text('td', r.period.slice(0, 7)), text('td', r[group + '_id'] ?? r[group]),
        text('td', r.active_users.toLocaleString('en')), text('td', r.total_sessions.toLocaleString('en')));
      breakdown.appendChild(tr);
    }
    if (parts.rows.length === 0) breakdown.appendChild(text('tr', '')).appendChild(text('td', 'No usage in this range.'));
    await showLogs();
    const sched = $('schedules');
    sched.replaceChildren();
    try {
      const list = await api('/reports/export-schedules');
      for (const x of list.schedules) {
        const tr = document.createElement('tr');
        tr.append(text('td', x.report_type), text('td', x.format), text('td', x.cadence), text('td', x.next_run_at));
        sched.appendChild(tr);
      }
      if (list.schedules.length === 0) sched.appendChild(text('tr', '')).appendChild(text('td', 'None (POST /reports/export-schedules).'));
    } catch (err) {
      sched.appendChild(text('tr', '')).appendChild(text('td', 'Schedules: ' + err.message));
    }
    $('status').textContent = 'Updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    $('status').textContent = err.message;
    $('status').className = 'error';
  }
}

async function showLogs() {
  const tbody = $('errors');
  tbody.replaceChildren();
  const severity = $('severity').value;
  try {
    const logs = await api('/logs/system-events?limit=10' + (severity ? '&severity=' + severity : ''));
    for (const e of logs.events) {
      const tr = document.createElement('tr');
      tr.append(text('td', e.timestamp.replace('T', ' ').replace('Z', '')), text('td', e.severity), text('td', e.service), text('td', e.message));
      tbody.appendChild(tr);
    }
    if (logs.events.length === 0) tbody.appendChild(text('tr', '')).appendChild(text('td', 'No logs.'));
  } catch (err) {
    tbody.appendChild(text('tr', '')).appendChild(text('td', 'Logs: ' + err.message));
  }
}

async function exportCsv() {
  const out = $('export-status');
  try {
    const job = await api('/reports/export', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ report_type: 'usage-summary', format: 'csv', start_date: $('start').value, end_date: $('end').value }),
    });
    out.textContent = 'Export ' + job.status + '…';
    for (let i = 0; i < 120; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = await api('/reports/export/' + encodeURIComponent(job.job_id));
      if (s.status === 'completed') {
        out.replaceChildren(text('a', 'Download CSV'));
        out.firstChild.href = s.download_url;
        return;
      }
      if (s.status === 'failed') { out.textContent = 'Export failed: ' + (s.error || 'unknown error'); return; }
      out.textContent = 'Export ' + s.status + '…';
    }
  } catch (err) {
    out.textContent = err.message;
  }
}

$('f').addEventListener('submit', (e) => { e.preventDefault(); show(); });
$('export').addEventListener('click', exportCsv);
$('severity').addEventListener('change', () => { if ($('token').value.trim()) showLogs(); });
$('group').addEventListener('change', () => { if ($('token').value.trim()) show(); });
if ($('token').value) show();
</script></body></html>
`;
