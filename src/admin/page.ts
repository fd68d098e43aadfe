// The admin page's files, served by the gateway itself (no CDN, nothing fetched from elsewhere): the
// HTML shell, its stylesheet and its script. The script polls /admin/api/status every 2 s and renders
// every string it did not write itself (user, client and tool names, reasons) through textContent, so
// nothing from a client becomes markup; the Content-Security-Policy allows only these files.

/** No inline script or style, no other origin, no framing, no forms, no plugins. */
export const ADMIN_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const ADMIN_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>mcp-relay status</title>
<link rel="stylesheet" href="/admin/admin.css">
<script src="/admin/admin.js" defer></script>
</head>
<body>
<header>
  <h1>mcp-relay</h1>
  <p id="summary">loading…</p>
  <p id="problem" hidden></p>
</header>
<main>
  <section>
    <h2>Calls per second, last 5 minutes</h2>
    <svg id="chart" viewBox="0 0 600 120" preserveAspectRatio="none" role="img" aria-label="calls per second"></svg>
    <p class="legend"><span class="calls">calls</span> <span class="errors">errors</span> <span id="chart-peak"></span></p>
  </section>
  <section>
    <h2>Connected now</h2>
    <table id="sessions">
      <thead><tr><th>user</th><th>server</th><th>client</th><th>from</th><th>since</th><th>requests</th><th>in flight</th><th>session</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Calls by user</h2>
    <table id="users">
      <thead><tr><th>user</th><th>calls</th><th>errors</th><th>calls/s (1 min)</th><th>errors/s (1 min)</th><th>last call</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Backends</h2>
    <table id="backends">
      <thead><tr><th>server</th><th>for</th><th>pid</th><th>state</th><th>health</th><th>CPU</th><th>RSS</th><th>uptime</th><th>restarts</th><th>sessions</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Recent refusals</h2>
    <table id="refusals">
      <thead><tr><th>when</th><th>user</th><th>server</th><th>request</th><th>status</th><th>reason</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="auth-failures"></p>
  </section>
</main>
</body>
</html>
`;

export const ADMIN_CSS = `:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem; }
h1 { margin: 0; font-size: 1.4rem; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 0.4rem; }
#summary { margin: 0.3rem 0; opacity: 0.8; }
#problem { color: #c0392b; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.25rem 0.6rem; border-bottom: 1px solid #8884; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr.empty td { opacity: 0.6; font-style: italic; }
.bad { color: #c0392b; font-weight: 600; }
.good { color: #1e8449; }
svg#chart { width: 100%; height: 140px; border: 1px solid #8884; background: #8881; }
svg#chart .calls { fill: none; stroke: #2e86c1; stroke-width: 1.5; }
svg#chart .errors { fill: none; stroke: #c0392b; stroke-width: 1.5; }
.legend span.calls { color: #2e86c1; }
.legend span.errors { color: #c0392b; }
.legend { font-size: 0.85rem; margin: 0.2rem 0; }
`;

export const ADMIN_JS = `'use strict';
(function () {
  var POLL_MS = 2000;
  var SVG = 'http://www.w3.org/2000/svg';
  var lastCpu = new Map();

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    var h = Math.floor(m / 60);
    if (h < 48) return h + 'h ' + (m % 60) + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function mib(bytes) {
    return bytes === undefined || bytes === null ? '–' : (bytes / 1048576).toFixed(1) + ' MiB';
  }

  function fill(id, rows, empty) {
    var body = document.querySelector('#' + id + ' tbody');
    var fresh = document.createElement('tbody');
    if (rows.length === 0) {
      var tr = el('tr', undefined, 'empty');
      var td = el('td', empty);
      td.colSpan = document.querySelectorAll('#' + id + ' thead th').length;
      tr.appendChild(td);
      fresh.appendChild(tr);
    }
    rows.forEach(function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (cell) {
        var td = typeof cell === 'object' && cell !== null ? el('td', cell.text, cell.className) : el('td', cell);
        tr.appendChild(td);
      });
      fresh.appendChild(tr);
    });
    body.replaceWith(fresh);
  }

  function num(value) {
    return { text: value, className: 'num' };
  }

  function chart(history) {
    var svg = document.getElementById('chart');
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var calls = history.calls;
    var peak = Math.max(1, Math.max.apply(null, calls));
    var width = 600;
    var height = 120;
    function line(values, className) {
      var points = values.map(function (value, index) {
        var x = (index / Math.max(1, values.length - 1)) * width;
        var y = height - 4 - (value / peak) * (height - 8);
        return x.toFixed(1) + ',' + y.toFixed(1);
      });
      var polyline = document.createElementNS(SVG, 'polyline');
      polyline.setAttribute('points', points.join(' '));
      polyline.setAttribute('class', className);
      svg.appendChild(polyline);
    }
    line(calls, 'calls');
    line(history.errors, 'errors');
    document.getElementById('chart-peak').textContent = 'peak ' + peak + '/s';
  }

  function render(status) {
    var now = status.now;
    document.getElementById('problem').hidden = true;
    var unhealthy = Object.keys(status.servers).filter(function (name) {
      return !status.servers[name].healthy;
    });
    document.getElementById('summary').textContent =
      'version ' + status.version + ' · up ' + duration(now - status.startedAt) + ' · ' +
      status.sessions.length + ' sessions · ' + status.backends.length + ' backends · ' +
      (unhealthy.length === 0 ? 'all servers healthy' : 'unhealthy: ' + unhealthy.join(', '));
    chart(status.history);
    fill('sessions', status.sessions.map(function (s) {
      var client = s.clientName ? s.clientName + (s.clientVersion ? ' ' + s.clientVersion : '') : '–';
      return [s.user, s.server, client, s.address || s.auth, duration(now - s.since) + ' ago',
        num(s.requests), num(s.inFlight), s.id];
    }), 'nobody is connected');
    fill('users', status.users.map(function (u) {
      return [u.user, num(u.calls), num(u.errors), num(u.callsPerSecond.toFixed(2)),
        num(u.errorsPerSecond.toFixed(2)), duration(now - u.lastCall) + ' ago'];
    }), 'no calls yet');
    var seen = new Map();
    fill('backends', status.backends.map(function (b) {
      var cpu = '–';
      if (b.pid !== undefined && b.cpuSeconds !== undefined) {
        var before = lastCpu.get(b.pid);
        cpu = b.cpuSeconds.toFixed(2) + ' s';
        if (before && now > before.at) {
          cpu += ' (' + ((100 * (b.cpuSeconds - before.cpu) * 1000) / (now - before.at)).toFixed(1) + '%)';
        }
        seen.set(b.pid, { cpu: b.cpuSeconds, at: now });
      }
      return [b.server, b.user || 'shared', num(b.pid === undefined ? '–' : b.pid), b.state,
        { text: b.healthy ? 'healthy' : 'unhealthy', className: b.healthy ? 'good' : 'bad' },
        num(cpu), num(mib(b.rssBytes)), b.startedAt ? duration(now - b.startedAt) : '–',
        num(b.restarts), num(b.sessions)];
    }), 'no backend running');
    lastCpu = seen;
    fill('refusals', status.refusals.map(function (r) {
      return [duration(now - r.at) + ' ago', r.user, r.server, r.name ? r.method + ' ' + r.name : r.method,
        num(r.status === undefined ? '–' : r.status), r.reason];
    }), 'none');
    var failures = Object.keys(status.authFailures).map(function (reason) {
      return reason + ': ' + status.authFailures[reason];
    });
    document.getElementById('auth-failures').textContent =
      failures.length === 0 ? 'No failed sign-ins.' : 'Failed sign-ins since start: ' + failures.join(', ');
  }

  function problem(text) {
    var node = document.getElementById('problem');
    node.textContent = text;
    node.hidden = false;
  }

  function poll() {
    fetch('/admin/api/status', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          problem('Signed out: open a new link with mcp-relay status --open.');
          return undefined;
        }
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (status) {
        if (status) render(status);
      })
      .catch(function (error) {
        problem('The gateway cannot be reached (' + error.message + '); retrying.');
      })
      .finally(function () {
        setTimeout(poll, POLL_MS);
      });
  }

  poll();
})();
`;
