// GET /ui: the dashboard, one self-contained page (inline CSS and script, no external request). It reads GET /ui/stream
// (server-sent events) and acts through the REST API the CLI uses (POST /switchover, PATCH /config, POST /restart,
// POST /reinitialize; another member's restart/reinitialize through POST /members/<name>/…, which this member relays
// with the caller's credentials), asking for Basic credentials when the API answers 401. Plain DOM, no framework.
// Served read-only by the proxy (the cluster document's read_only says why): no action buttons there.
import { writePauseOf } from './write-pause.js';

const STYLE = `
:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f5f6f8; }
body { margin: 0 auto; max-width: 1200px; padding: 12px 20px; }
header { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 15px; margin: 18px 0 6px; }
.pill { padding: 2px 8px; border-radius: 10px; background: #dde3ec; font-size: 12px; }
.live { background: #c9efd2; } .down { background: #f6d0d0; } .paused { background: #ffe7a8; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e6eb; font-size: 13px; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
tr.leader td { background: #eaf6ee; }
.muted { color: #6b7280; } .warn { color: #a15c00; } .num { font-variant-numeric: tabular-nums; text-align: right; }
.actions { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; background: #fff; padding: 8px; }
button { font: inherit; padding: 3px 10px; cursor: pointer; }
#message { min-height: 1.4em; }
ol#timeline { list-style: none; padding: 0; margin: 0; border-left: 3px solid #9aa6b8; }
ol#timeline li { margin: 0 0 8px 0; padding: 2px 10px; position: relative; background: #fff; }
ol#timeline li::before { content: ""; position: absolute; left: -8px; top: 8px; width: 10px; height: 10px; border-radius: 50%; background: #4a6fa5; }
#events-box { max-height: 420px; overflow-y: auto; background: #fff; }
svg.spark { vertical-align: middle; }
`;

const SCRIPT = `
'use strict';
var root = location.pathname.replace(/\\/ui\\/?$/, '');
var state = { cluster: null, events: [], samples: [], credentials: null, lock: null };
var SAMPLES = 360;
function $(id) { return document.getElementById(id); }
function el(tag, attrs, children) {
  var node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
  (children || []).forEach(function (child) { node.append(child instanceof Node ? child : String(child)); });
  return node;
}
function bytes(n) {
  if (n === undefined || n === null || n === 'unknown') return n === 'unknown' ? 'unknown' : '';
  var units = ['B', 'kB', 'MB', 'GB', 'TB'], i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n = n / 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function sparkline(points) {
  var w = 100, h = 18, max = Math.max.apply(null, points.concat([1]));
  var path = points.map(function (v, i) { return (i === 0 ? 'M' : 'L') + (i * w / (SAMPLES - 1)).toFixed(1) + ',' + (h - v / max * h).toFixed(1); }).join(' ');
  var svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'spark'); svg.setAttribute('width', w); svg.setAttribute('height', h);
  var p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', path); p.setAttribute('fill', 'none'); p.setAttribute('stroke', '#4a6fa5');
  svg.append(p);
  return svg;
}
/** WAL written per second between consecutive history samples (the leader's published position). */
function walRates() {
  var rates = [];
  for (var i = 1; i < state.samples.length; i++) {
    var a = state.samples[i - 1], b = state.samples[i];
    if (typeof a.optime === 'number' && typeof b.optime === 'number' && b.at > a.at) rates.push(Math.max(0, (b.optime - a.optime) / ((b.at - a.at) / 1000)));
  }
  return rates;
}
function seconds(s) { return s === undefined || s === null ? '' : (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s'; }
/** The lock's time left: from the lock frames (every second while the page is open), else the leader's own figure. */
function renderLock() {
  var c = state.cluster, l = state.lock;
  if (!c) return;
  var ttl = c.ttl !== undefined ? ' (ttl ' + c.ttl + ' s)' : '';
  if (l && l.leader === c.leader && l.left_ms !== undefined) {
    $('lock').textContent = (l.left_ms / 1000).toFixed(1) + ' s left' + ttl;
    $('lock').title = 'from ' + l.source;
    $('lock-source').textContent = 'from ' + l.source;
  } else {
    $('lock').textContent = c.lock_left_ms !== undefined ? (c.lock_left_ms / 1000).toFixed(1) + ' s left' + ttl : c.leader ? 'held' + ttl : 'no lock';
    $('lock-source').textContent = l ? 'from ' + l.source : '';
  }
}
function renderCluster() {
  var c = state.cluster;
  if (!c) return;
  $('scope').textContent = c.scope;
  $('opened').textContent = c.this_member;
  $('leader').textContent = c.leader || 'none';
  renderLock();
  $('readonly').textContent = c.read_only ? 'Read-only here: ' + c.read_only : '';
  Array.prototype.forEach.call(document.querySelectorAll('.actions button, .actions select'), function (control) { control.disabled = !!c.read_only; });
  $('pause').className = 'pill' + (c.pause ? ' paused' : '');
  $('pause').textContent = c.pause ? 'paused (maintenance)' : 'automatic failover on';
  $('sync').textContent = c.sync && c.sync.sync_standby ? c.sync.sync_standby : 'none';
  $('warning').textContent = c.synchronous_mode_warning || '';
  var rates = walRates();
  $('walrate').replaceChildren(rates.length ? bytes(Math.round(rates[rates.length - 1])) + '/s ' : 'not measured yet ', sparkline(rates));
  var body = $('members').tBodies[0];
  body.replaceChildren();
  c.members.forEach(function (m) {
    var tags = m.tags ? Object.keys(m.tags).map(function (k) { return k + '=' + m.tags[k]; }).join(' ') : '';
    var row = el('tr', { 'data-member': m.name, class: m.name === c.leader ? 'leader' : '' }, [
      el('td', {}, [m.name + (m.name === c.this_member ? ' (this page)' : '')]),
      el('td', { class: 'role' }, [m.role]),
      el('td', { class: 'state' }, [m.state + (m.replication_state ? ' / ' + m.replication_state : '')]),
      el('td', { class: 'num' }, [m.timeline === undefined ? '' : m.timeline]),
      el('td', { class: 'num lag' }, [m.role === 'leader' ? '' : bytes(m.lag)]),
      el('td', { class: 'num lag-s' }, [m.role === 'leader' ? '' : m.lag_seconds === undefined ? 'unknown' : seconds(m.lag_seconds)]),
      el('td', {}, [sparkline(state.samples.map(function (sample) { return sample.lag[m.name] || 0; }))]),
      el('td', {}, [tags]),
      el('td', { class: 'warn' }, [m.pending_restart ? 'pending restart' : '']),
      el('td', {}, c.read_only ? [] : [actionButton('restart', m.name, c.this_member), ' ', actionButton('reinit', m.name, c.this_member)]),
    ]);
    body.append(row);
  });
  var select = $('candidate'), chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, ['any healthy replica']));
  c.members.filter(function (m) { return m.name !== c.leader; }).forEach(function (m) {
    select.append(el('option', { value: m.name }, [m.name]));
  });
  if (Array.prototype.some.call(select.options, function (o) { return o.value === chosen; })) select.value = chosen;
  $('slots').textContent = (c.slots || []).map(function (s) { return s.name + ' (' + bytes(s.behind_bytes) + ' behind)'; }).join(', ') || 'none';
  renderProxies();
  renderTimeline();
}
function renderProxies() {
  var proxies = (state.cluster && state.cluster.proxies) || [];
  var body = $('proxies').tBodies[0];
  body.replaceChildren();
  proxies.forEach(function (p) {
    var link = p.api_url ? el('a', { href: p.api_url.replace(/\\/$/, '') + '/ui' }, ['/ui']) : '';
    body.append(el('tr', { 'data-proxy': p.name }, [
      el('td', {}, [p.name]),
      el('td', { class: 'route-primary' }, [p.primary ? p.primary : 'held: ' + (p.held || 'no route')]),
      el('td', { class: 'route-replicas' }, [(p.replicas || []).join(', ') || 'none']),
      el('td', { class: 'muted' }, [(p.primary_listen || '') + (p.replica_listen ? ' / ' + p.replica_listen : '')]),
      el('td', {}, [link]),
    ]));
  });
  if (!proxies.length) body.append(el('tr', {}, [el('td', { colspan: 5, class: 'muted' }, ['no pgwarden proxy publishes its routes for this cluster'])]));
}
/** Restart or reinitialize: this member's own API, or another member's through this one (relayed with your credentials). */
function actionButton(kind, member, self) {
  var button = el('button', { 'data-action': kind }, [kind]);
  button.onclick = function () {
    var via = member === self ? '' : ' (relayed by ' + self + ' to ' + member + '\u2019s REST API with your credentials)';
    if (!confirm((kind === 'restart' ? 'Restart PostgreSQL on ' : 'Reinitialize (wipe and copy again) ') + member + via + '?')) return;
    var endpoint = kind === 'restart' ? '/restart' : '/reinitialize';
    call('POST', member === self ? endpoint : '/members/' + encodeURIComponent(member) + endpoint, kind === 'restart' ? {} : { force: true });
  };
  return button;
}
/** The decision that made the new leader of a timeline: its acquireLeader/promote events around the history entry. */
function causeOf(entry) {
  var at = Date.parse(entry[3] || '');
  var candidates = state.events.filter(function (e) {
    return e.member === entry[4] && e.actions.indexOf('acquireLeader') >= 0 && (isNaN(at) || Date.parse(e.at) <= at + 5000);
  });
  return candidates.length ? candidates[candidates.length - 1] : undefined;
}
/** Why the old leader was given up (a crash: its stale or silent lock removed), between the previous entry and the cause. */
function triggerOf(cause, previous) {
  if (!cause) return undefined;
  var until = Date.parse(cause.at), since = previous ? Date.parse(previous[3] || '') : until - 60000;
  var found = state.events.filter(function (e) {
    var when = Date.parse(e.at);
    return when <= until && when > Math.max(since, until - 60000) &&
      e.actions.some(function (a) { return a === 'deleteStaleLeader' || a === 'deleteSilentLeader'; });
  });
  return found.length ? found[found.length - 1] : undefined;
}
/** The write pause: api/write-pause.ts (its source is embedded here, and unit-tested there). */
${writePauseOf.toString()}
function renderTimeline() {
  var list = $('timeline');
  list.replaceChildren();
  var history = (state.cluster && state.cluster.history) || [];
  history.slice().reverse().forEach(function (entry, i) {
    var previous = history[history.length - 2 - i];
    var cause = causeOf(entry), pause = writePauseOf(entry, previous, state.events), trigger = triggerOf(cause, previous);
    var kind = cause ? (/switchover/.test(cause.reason) ? 'switchover' : 'failover') : 'new timeline';
    list.append(el('li', { 'data-timeline': entry[0] + 1 }, [
      el('strong', {}, ['TL ' + (entry[0] + 1) + ' \\u2190 ' + entry[0] + ': ' + kind + ' to ' + (entry[4] || '?')]), ' ',
      el('span', { class: 'muted' }, [(entry[3] || '') + ' at LSN ' + entry[1]]), el('br'),
      el('span', { class: 'reason' }, [cause ? cause.reason : entry[2]]),
      trigger ? el('span', { class: 'trigger' }, [' \u2014 after ' + trigger.member + ': ' + trigger.reason]) : '',
      pause ? el('span', { class: 'muted pause', 'data-basis': pause.basis }, [' \\u2014 ' + pause.text]) : '',
    ]));
  });
  if (!history.length) list.append(el('li', {}, ['timeline 1: no switchover or failover yet']));
}
function renderEvents() {
  var filter = $('member-filter'), chosen = filter.value;
  var members = Array.from(new Set(state.events.map(function (e) { return e.member; }))).sort();
  filter.replaceChildren(el('option', { value: '' }, ['all members']));
  members.forEach(function (m) { filter.append(el('option', { value: m }, [m])); });
  filter.value = members.indexOf(chosen) >= 0 ? chosen : '';
  var body = $('events').tBodies[0];
  body.replaceChildren();
  state.events.filter(function (e) { return !filter.value || e.member === filter.value; }).slice(-200).reverse().forEach(function (e) {
    body.append(el('tr', { 'data-member': e.member }, [
      el('td', { class: 'muted' }, [e.at.replace('T', ' ').replace('Z', '')]), el('td', {}, [e.member]), el('td', {}, [e.role]),
      el('td', {}, [e.reason]), el('td', { class: 'muted' }, [e.actions.join(', ')]),
    ]));
  });
}
function addEvents(events) {
  events.forEach(function (e) { state.events.push(e); });
  state.events.sort(function (a, b) { return a.at < b.at ? -1 : a.at > b.at ? 1 : 0; });
  if (state.events.length > 500) state.events.splice(0, state.events.length - 500);
  renderEvents();
  renderTimeline();
}
function message(text, isError) { $('message').textContent = text; $('message').className = isError ? 'warn' : 'muted'; }
function call(method, path, body, isRetry) {
  var headers = { 'content-type': 'application/json', 'x-pgwarden-ui': '1' };
  if (state.credentials) headers.authorization = 'Basic ' + state.credentials;
  message(method + ' ' + path + ' \\u2026');
  return fetch(root + path, { method: method, headers: headers, body: JSON.stringify(body) }).then(function (reply) {
    return reply.text().then(function (text) {
      if (reply.status === 401 && isRetry) {
        state.credentials = null;
        message(method + ' ' + path + ': 401 ' + text + ' (wrong user name or password?)', true);
        return;
      }
      if (reply.status === 401) {
        var user = prompt('The REST API asks for credentials (restapi.authentication). User name:');
        if (user === null) { message('not authenticated', true); return; }
        var password = prompt('Password for ' + user + ':') || '';
        state.credentials = btoa(user + ':' + password);
        return call(method, path, body, true);
      }
      message(method + ' ' + path + ': ' + reply.status + ' ' + text, reply.status >= 400);
    });
  }).catch(function (error) { message(method + ' ' + path + ' failed: ' + error, true); });
}
function connect() {
  var source = new EventSource(root + '/ui/stream');
  source.addEventListener('open', function () { $('live').textContent = 'live'; $('live').className = 'pill live'; });
  source.addEventListener('error', function () { $('live').textContent = 'reconnecting'; $('live').className = 'pill down'; });
  source.addEventListener('cluster', function (frame) {
    state.cluster = JSON.parse(frame.data);
    $('updated').textContent = new Date().toLocaleTimeString();
    renderCluster();
  });
  source.addEventListener('samples', function (frame) { state.samples = JSON.parse(frame.data); renderCluster(); });
  source.addEventListener('sample', function (frame) {
    state.samples.push(JSON.parse(frame.data));
    if (state.samples.length > SAMPLES) state.samples.shift();
    renderCluster();
  });
  source.addEventListener('lock', function (frame) { state.lock = JSON.parse(frame.data); renderLock(); });
  source.addEventListener('events', function (frame) { state.events = []; addEvents(JSON.parse(frame.data)); });
  source.addEventListener('event', function (frame) { addEvents([JSON.parse(frame.data)]); });
}
$('switchover').onclick = function () {
  var c = state.cluster;
  if (!c || !c.leader) { message('no leader to switch over from', true); return; }
  var candidate = $('candidate').value;
  if (!confirm('Switch over from ' + c.leader + ' to ' + (candidate || 'any healthy replica') + '?')) return;
  var body = { leader: c.leader };
  if (candidate) body.candidate = candidate;
  call('POST', '/switchover', body);
};
$('toggle-pause').onclick = function () {
  var paused = !!(state.cluster && state.cluster.pause);
  if (!confirm(paused ? 'Resume automatic failover?' : 'Pause the cluster (maintenance mode, no automatic failover)?')) return;
  call('PATCH', '/config', { pause: !paused });
};
$('member-filter').onchange = renderEvents;
connect();
`;

/** The page loads nothing from elsewhere, and says so to the browser. */
export const UI_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
  'cache-control': 'no-cache',
};

/** The whole page; served as is (nothing in it depends on the request). */
export const UI_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgwarden dashboard</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>pgwarden: <span id="scope">…</span></h1>
  <span id="live" class="pill">connecting</span>
  <span id="pause" class="pill"></span>
  <span class="muted">opened on <span id="opened"></span>, updated <span id="updated">never</span></span>
</header>
<h2>Topology</h2>
<p>Leader: <strong id="leader">…</strong> · lock: <span id="lock"></span> <span id="lock-source" class="muted"></span> · sync set: <span id="sync"></span> · slots: <span id="slots"></span> · WAL rate (last hour): <span id="walrate"></span> <span id="warning" class="warn"></span></p>
<table id="members">
  <thead><tr><th>Member</th><th>Role</th><th>State</th><th>TL</th><th>Lag</th><th>Lag (s)</th><th>Lag (last hour)</th><th>Tags</th><th>Pending</th><th>Actions</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Proxies</h2>
<table id="proxies">
  <thead><tr><th>Proxy</th><th>Primary traffic to</th><th>Replica traffic to</th><th>Listens on</th><th>Dashboard</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Actions</h2>
<p id="readonly" class="warn"></p>
<div class="actions">
  <label>Switchover to <select id="candidate"></select></label>
  <button id="switchover">Switch over</button>
  <button id="toggle-pause">Pause / resume</button>
  <span id="message" class="muted"></span>
</div>
<h2>Timeline history</h2>
<ol id="timeline"></ol>
<h2>HA decisions <select id="member-filter"></select></h2>
<div id="events-box"><table id="events"><thead><tr><th>Time (UTC)</th><th>Member</th><th>Role</th><th>Reason</th><th>Actions</th></tr></thead><tbody></tbody></table></div>
<script>${SCRIPT}</script>
</body>
</html>
`;
