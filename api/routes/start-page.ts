// The static page at `/`: asks for a token, then fetches a report with it in the browser. No server state.
export const START_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tally</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
input,select,button{font:inherit;margin:.2rem 0}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style></head>
<body><h1>Tally</h1>
<p>Usage and system-log reports. API reference: <a href="/docs">/docs</a> (<a href="/openapi.json">OpenAPI 3.1</a>).</p>
<form id="f"><label>Token (Bearer JWT)<br><input id="token" type="password" size="60" required></label><br>
<label>Report <select id="report"><option value="/reports/usage-summary">usage summary</option>
<option value="/reports/usage-timeseries">usage timeseries (weekly)</option>
<option value="/logs/system-events">system events</option></select></label><br>
<label>From <input id="start" type="date" value="2025-01-01"></label>
<label>to <input id="end" type="date" value="2025-12-31"></label><br>
<button>Fetch</button></form><pre id="out"></pre>
<script>
document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const v = (id) => document.getElementById(id).value;
  const q = new URLSearchParams({ start_date: v('start'), end_date: v('end') });
  if (v('report').endsWith('timeseries')) q.set('interval', 'week');
  const res = await fetch(v('report') + '?' + q, { headers: { Authorization: 'Bearer ' + v('token') } });
  document.getElementById('out').textContent = res.status + '\\n' + JSON.stringify(await res.json(), null, 2);
});
</script></body></html>
`;
