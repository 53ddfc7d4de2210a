// Aetherium dashboard: a client of the REST API (/api/v1) with the session
// cookie that POST /api/v1/session sets. Every value from the API is put in
// the page as text (el() below), never as HTML: sandbox names and command
// output are untrusted.
import { Terminal } from './vendor/xterm.mjs';
import { FitAddon } from './vendor/addon-fit.mjs';

const main = document.getElementById('main');
let session = null; // GET /api/v1/session: key_prefix, project_id, role, csrf_token
let cleanups = []; // closers of the current page's streams and terminal
let events = []; // the newest live events, newest last
let eventSource = null;
let refreshTimer = null;
const maxEvents = 200;

// el builds an element: attrs are properties (on* are listeners), children
// are elements or text.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'class') e.className = v;
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function showError(msg) {
  const box = document.getElementById('error');
  box.textContent = msg || '';
  box.hidden = !msg;
}

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// api calls the REST API with the session cookie; mutating calls carry the
// session's CSRF token. A 401 means the session ended (logged out, key
// revoked or expired): back to the login page.
async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = session ? session.csrf_token : '';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = data.error || {};
    if (res.status === 401 && path !== '/api/v1/session') loggedOut();
    throw new APIError(res.status, err.code, err.message || res.statusText);
  }
  return data;
}

function wsURL(path, params = {}) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined) u.searchParams.set(k, v);
  u.searchParams.set('csrf_token', session.csrf_token);
  return u.toString();
}

function fmtTime(t) { return t ? new Date(t).toLocaleString() : ''; }
function ago(t) {
  if (!t) return '';
  const s = Math.round((Date.now() - new Date(t)) / 1000);
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}
function ttl(vm) {
  const parts = [];
  if (vm.expires_at) {
    const s = Math.round((new Date(vm.expires_at) - Date.now()) / 1000);
    parts.push(s > 0 ? `expires in ${s < 120 ? s + 's' : Math.round(s / 60) + 'm'}` : 'expired');
  }
  if (vm.idle_timeout_seconds) parts.push(`idle ${vm.idle_timeout_seconds}s`);
  if (parts.length && vm.on_expire) parts.push(`then ${vm.on_expire}`);
  return parts.join(', ') || 'none';
}
function status(s) { return el('span', { class: 'status-' + s }, s); }
function table(headers, rows) {
  return el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), el('tbody', {}, rows));
}

// listAll follows a list's pages (oldest first) up to limit rows; pages
// are of pageSize rows (the API allows 1000, 100 for executions).
async function listAll(path, field, limit = 5000, pageSize = 1000) {
  let out = [];
  let cursor = '';
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=${pageSize}${cursor ? '&cursor=' + encodeURIComponent(cursor) : ''}`);
    out = out.concat(page[field] || []);
    cursor = page.next || '';
  } while (cursor && out.length < limit);
  return out;
}

// --- pages ---

async function sandboxesPage() {
  const [vms, tpls] = await Promise.all([listAll('/api/v1/vms', 'vms'), api('GET', '/api/v1/templates')]);
  const form = el('form', { class: 'inline', id: 'create-form', onsubmit: createSandbox },
    el('label', {}, 'Name', el('input', { id: 'create-name', placeholder: 'optional' })),
    el('label', {}, 'Template', el('select', { id: 'create-template' }, el('option', { value: '' }, '(default image)'),
      tpls.templates.filter((t) => t.status === 'ready').map((t) => el('option', { value: t.name }, t.name)))),
    el('label', {}, 'vCPUs', el('input', { id: 'create-vcpus', type: 'number', min: 1, placeholder: 'default' })),
    el('label', {}, 'Memory MB', el('input', { id: 'create-memory', type: 'number', min: 64, placeholder: 'default' })),
    el('label', {}, 'TTL seconds', el('input', { id: 'create-ttl', type: 'number', min: 0, placeholder: 'none' })),
    el('button', { type: 'submit', id: 'create-submit' }, 'Create sandbox'));
  const rows = vms.reverse().map((vm) => el('tr', { dataset: { vmName: vm.name, vmId: vm.id, status: vm.status } },
    el('td', {}, vm.name), el('td', {}, status(vm.status)), el('td', {}, vm.template || vm.image),
    el('td', {}, `${vm.vcpus} vCPU, ${vm.memory_mb} MB`), el('td', { class: 'mono' }, vm.ip_address || ''),
    el('td', {}, ttl(vm)), el('td', { title: fmtTime(vm.created_at) }, ago(vm.created_at)),
    el('td', {},
      vm.status === 'running' ? el('a', { href: `#/terminal/${vm.id}`, class: 'terminal-link' }, 'Terminal') : null, ' ',
      el('a', { href: `#/executions/${vm.id}` }, 'Executions'), ' ',
      el('button', { class: 'delete', onclick: () => deleteSandbox(vm) }, 'Delete'))));
  return [el('h1', {}, 'Sandboxes'), form,
    table(['Name', 'Status', 'Template / image', 'Resources', 'IP', 'TTL', 'Created', ''], rows)];
}

async function createSandbox(ev) {
  ev.preventDefault();
  const num = (id) => { const v = document.getElementById(id).value; return v === '' ? undefined : Number(v); };
  const body = { name: document.getElementById('create-name').value.trim(),
    template: document.getElementById('create-template').value,
    vcpus: num('create-vcpus'), memory_mb: num('create-memory'), timeout_seconds: num('create-ttl') };
  await run(() => api('POST', '/api/v1/vms', body));
  render();
}

async function deleteSandbox(vm) {
  if (!confirm(`Delete sandbox ${vm.name}?`)) return;
  await run(() => api('DELETE', `/api/v1/vms/${encodeURIComponent(vm.id)}`));
  render();
}

async function tasksPage() {
  const tasks = (await listAll('/api/v1/tasks', 'tasks')).reverse().slice(0, 500);
  return [el('h1', {}, 'Tasks'), table(['Created', 'Type', 'Status', 'Progress', 'Sandbox', 'Error', 'ID'],
    tasks.map((t) => el('tr', { dataset: { taskId: t.id } }, el('td', { title: fmtTime(t.created_at) }, ago(t.created_at)),
      el('td', {}, t.type), el('td', {}, status(t.status)), el('td', {}, t.progress || ''),
      el('td', { class: 'mono' }, t.vm_id || ''), el('td', {}, t.error || ''), el('td', { class: 'mono' }, t.id))))];
}

async function jobsPage(id) {
  if (id) return jobPage(id);
  const tasks = (await listAll('/api/v1/tasks', 'tasks')).filter((t) => t.type === 'job:run').reverse();
  return [el('h1', {}, 'Jobs'), table(['Created', 'Job', 'Status', 'Progress', 'Sandbox'],
    tasks.map((t) => {
      const jobID = (t.payload && t.payload.job_id) || '';
      return el('tr', {}, el('td', {}, ago(t.created_at)),
        el('td', { class: 'mono' }, el('a', { href: `#/jobs/${jobID}` }, jobID)), el('td', {}, status(t.status)),
        el('td', {}, t.progress || ''), el('td', { class: 'mono' }, t.vm_id || ''));
    }))];
}

async function jobPage(id) {
  const d = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`);
  return [el('h1', {}, `Job ${d.job.id}`), el('p', {}, 'Status: ', status(d.job.status), d.job.error ? ` — ${d.job.error}` : ''),
    el('h2', {}, 'Commands'), el('ol', {}, d.job.commands.map((c) => el('li', { class: 'mono' }, c))),
    el('h2', {}, 'Executions'), executionsTable(d.executions)];
}

// ranAs says how an execution ran its command: as a line for /bin/sh -c, as
// the program with its args, or unknown (recorded before Aetherium kept it).
function ranAs(x) {
  return x.shell == null ? '—' : (x.shell ? 'shell' : 'program');
}

function executionsTable(execs) {
  return table(['Started', 'Command', 'Ran as', 'Exit', 'Duration', 'Output'], execs.map((x) => el('tr', { dataset: { ranAs: ranAs(x) } },
    el('td', {}, fmtTime(x.started_at)), el('td', { class: 'mono' }, [x.command, ...(x.args || [])].join(' ')),
    el('td', { class: 'ran-as' }, ranAs(x)),
    el('td', {}, x.exit_code ?? (x.signal || (x.timed_out ? 'timed out' : x.error || 'running'))),
    el('td', {}, `${x.duration_ms} ms`),
    el('td', {}, el('pre', { class: 'output stdout' }, x.stdout + (x.stdout_truncated ? '\n…(truncated)' : '')),
      x.stderr ? el('pre', { class: 'output stderr' }, x.stderr + (x.stderr_truncated ? '\n…(truncated)' : '')) : null))));
}

async function executionsPage(vmID) {
  const vms = (await listAll('/api/v1/vms?all=true', 'vms')).reverse();
  const pick = el('select', { id: 'exec-vm', onchange: (e) => { location.hash = `#/executions/${e.target.value}`; } },
    el('option', { value: '' }, '(choose a sandbox)'),
    vms.map((vm) => el('option', { value: vm.id, selected: vm.id === vmID }, `${vm.name} (${vm.status})`)));
  const out = [el('h1', {}, 'Executions'), el('form', { class: 'inline' }, el('label', {}, 'Sandbox', pick))];
  if (vmID) out.push(executionsTable(await listAll(`/api/v1/vms/${encodeURIComponent(vmID)}/executions`, 'executions', 1000, 100)));
  return out;
}

async function templatesPage() {
  const tpls = (await api('GET', '/api/v1/templates')).templates;
  return [el('h1', {}, 'Templates & pools'), table(['Name', 'Status', 'Image', 'Tools', 'Pool size', 'Error'],
    tpls.map((t) => {
      const size = el('input', { type: 'number', min: 0, value: t.pool_size, class: 'pool-size' });
      return el('tr', { dataset: { template: t.name } }, el('td', {}, t.name), el('td', {}, status(t.status)),
        el('td', { class: 'mono' }, t.image || ''),
        el('td', {}, Object.entries(t.tools_installed || {}).map(([k, v]) => `${k} ${v}`).join(', ')),
        el('td', {}, size, ' ', el('button', { onclick: async () => {
          await run(() => api('POST', `/api/v1/templates/${encodeURIComponent(t.name)}/pool`, { size: Number(size.value) }));
          render();
        } }, 'Set')),
        el('td', {}, t.error || ''));
    }))];
}

async function workersPage() {
  let ws;
  try {
    ws = (await api('GET', '/api/v1/workers')).workers;
  } catch (e) {
    if (e.status === 403) return [el('h1', {}, 'Workers'), el('p', {}, 'Workers serve every project: listing them needs an admin key.')];
    throw e;
  }
  return [el('h1', {}, 'Workers'), table(['ID', 'Address', 'Runtime', 'Sandboxes / capacity', 'Started', 'Heartbeat'],
    ws.map((w) => el('tr', {}, el('td', { class: 'mono' }, w.id), el('td', { class: 'mono' }, w.address || ''),
      el('td', {}, w.runtime), el('td', {}, `${w.sandboxes} / ${w.capacity}`), el('td', {}, fmtTime(w.started_at)),
      el('td', {}, ago(w.heartbeat_at)))))];
}

function eventItem(e) {
  return el('li', { dataset: { kind: e.kind, status: e.status, taskId: e.task_id || '', vmId: e.vm_id || '' } },
    `${new Date(e.time).toLocaleTimeString()} ${e.kind} ${e.status}`,
    e.task_type ? ` ${e.task_type}` : '', e.vm_id ? ` vm=${e.vm_id}` : '', e.task_id ? ` task=${e.task_id}` : '',
    e.progress ? ` (${e.progress})` : '', e.error ? ` error: ${e.error}` : '');
}

async function eventsPage() {
  const list = el('ul', { class: 'events', id: 'events' }, events.slice().reverse().map(eventItem));
  return [el('h1', {}, 'Live events'), el('p', { class: 'hint' }, 'Task and sandbox changes of this project, as they happen.'), list];
}

async function logsPage() {
  const f = (id, label, ph) => el('label', {}, label, el('input', { id, placeholder: ph }));
  const out = el('pre', { class: 'output', id: 'log-output' });
  const form = el('form', { class: 'inline', id: 'logs-form' }, f('log-vm', 'Sandbox', 'ID or name'),
    f('log-contains', 'Contains', ''), el('label', {}, 'Stream', el('select', { id: 'log-stream' },
      ['', 'stdout', 'stderr', 'system'].map((s) => el('option', { value: s }, s || 'any')))),
    el('button', { type: 'submit' }, 'Query'), el('button', { type: 'button', id: 'log-follow', onclick: () => followLogs(out) }, 'Follow'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const page = await run(() => api('POST', '/api/v1/logs/query', logFilter()));
    if (page) out.textContent = page.records.slice().reverse().map(logLine).join('\n');
  });
  return [el('h1', {}, 'Logs'), form, out];
}

function logFilter() {
  const v = (id) => document.getElementById(id).value.trim();
  const q = { vm_id: v('log-vm'), contains: v('log-contains'), stream: v('log-stream') };
  for (const k of Object.keys(q)) if (!q[k]) delete q[k];
  return q;
}

function logLine(r) { return `${new Date(r.time).toLocaleTimeString()} ${r.vm_id ? r.vm_id.slice(0, 8) : '-'} ${r.stream} ${r.line}`; }

function followLogs(out) {
  closePageStreams();
  const ws = new WebSocket(wsURL('/api/v1/logs/stream', { tail: 100, ...logFilter() }));
  out.textContent = '';
  let lines = 0;
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    const text = msg.record ? logLine(msg.record) : `… ${msg.dropped} records dropped (reading too slowly)`;
    out.append(text + '\n');
    if (++lines > 5000) out.removeChild(out.firstChild);
    out.scrollTop = out.scrollHeight;
  };
  ws.onclose = (e) => { if (e.code !== 1000 && e.code !== 1005) out.append(`(stream ended: ${e.code} ${e.reason})\n`); };
  cleanups.push(() => ws.close());
}

// terminalPage attaches xterm.js to the sandbox's PTY WebSocket
// (GET /api/v1/vms/{id}/pty): keystrokes go as binary messages, output
// comes back as binary messages, and resizes and the exit are JSON text
// messages.
async function terminalPage(vmID) {
  const vm = await api('GET', `/api/v1/vms/${encodeURIComponent(vmID)}`);
  const box = el('div', { id: 'terminal' });
  const state = el('p', { class: 'hint', id: 'terminal-state' }, 'connecting…');
  setTimeout(() => openTerminal(vm, box, state));
  return [el('h1', {}, `Terminal: ${vm.name}`), state, box];
}

function openTerminal(vm, box, state) {
  const term = new Terminal({ cursorBlink: true, fontSize: 13, convertEol: false });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const ws = new WebSocket(wsURL(`/api/v1/vms/${encodeURIComponent(vm.id)}/pty`, { cols: term.cols, rows: term.rows }));
  ws.binaryType = 'arraybuffer';
  const enc = new TextEncoder();
  ws.onopen = () => { state.textContent = 'connected'; term.focus(); };
  ws.onmessage = (m) => {
    if (typeof m.data !== 'string') { term.write(new Uint8Array(m.data)); return; }
    const msg = JSON.parse(m.data);
    if (msg.type === 'exit') state.textContent = `exited: ${msg.signal || msg.exit_code}`;
    else if (msg.type === 'error') state.textContent = `error: ${msg.error && msg.error.message}`;
  };
  ws.onclose = (e) => { if (!state.textContent.startsWith('exited')) state.textContent = `disconnected (${e.code}${e.reason ? ' ' + e.reason : ''})`; };
  const onData = term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
  const onResize = term.onResize(({ cols, rows }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  });
  const refit = () => fit.fit();
  window.addEventListener('resize', refit);
  cleanups.push(() => { window.removeEventListener('resize', refit); onData.dispose(); onResize.dispose(); ws.close(); term.dispose(); });
}

const pages = { sandboxes: sandboxesPage, tasks: tasksPage, jobs: jobsPage, executions: executionsPage,
  templates: templatesPage, workers: workersPage, events: eventsPage, logs: logsPage, terminal: terminalPage };
// live pages are re-rendered when an event arrives.
const live = new Set(['sandboxes', 'tasks', 'jobs', 'templates']);

function route() {
  const [name, arg] = location.hash.replace(/^#\/?/, '').split('/');
  return { name: pages[name] ? name : 'sandboxes', arg: arg ? decodeURIComponent(arg) : '' };
}

function closePageStreams() {
  for (const c of cleanups) c();
  cleanups = [];
}

// run shows a failed call's message instead of throwing.
async function run(fn) {
  try {
    showError('');
    return await fn();
  } catch (e) {
    if (!(e instanceof APIError && e.status === 401)) showError(e.message);
    return null;
  }
}

let rendering = 0;
// render shows the page of the location's fragment. A refresh (after live
// events) replaces only the page's tables, so a half-filled form keeps
// what the user typed.
async function render(refresh = false) {
  if (!session) return;
  const { name, arg } = route();
  const n = ++rendering;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === `#/${name}`);
  const content = await run(() => pages[name](arg));
  if (n !== rendering || !content || !session) return; // a newer render, or logged out
  const oldTables = main.querySelectorAll(':scope > table');
  const newTables = content.filter((c) => c.tagName === 'TABLE');
  if (refresh && main.dataset.page === name && oldTables.length === newTables.length) {
    oldTables.forEach((t, i) => t.replaceWith(newTables[i]));
    return;
  }
  closePageStreams();
  main.replaceChildren(...content);
  main.dataset.page = name;
}

function scheduleRefresh() {
  if (!live.has(route().name) || refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; render(true); }, 500);
}

function onEvent(m) {
  const e = JSON.parse(m.data);
  events.push(e);
  if (events.length > maxEvents) events.shift();
  const list = document.getElementById('events');
  if (list) list.prepend(eventItem(e));
  scheduleRefresh();
}

function startEvents() {
  eventSource = new EventSource('/api/v1/events');
  eventSource.addEventListener('task', onEvent);
  eventSource.addEventListener('vm', onEvent);
}

function loggedIn(s) {
  session = s;
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').textContent = `${s.key_prefix} · ${s.role} · project ${s.project_id}`;
  if (!eventSource) startEvents();
  render();
}

function loggedOut() {
  session = null;
  closePageStreams();
  if (eventSource) { eventSource.close(); eventSource = null; }
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  main.replaceChildren(document.getElementById('login-page').content.cloneNode(true));
  main.dataset.page = 'login';
  document.getElementById('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = document.getElementById('login-key').value;
    try {
      showError('');
      loggedIn(await api('POST', '/api/v1/session', { key }));
    } catch (e) {
      showError(e.status === 401 ? 'That key is not valid (unknown, revoked or expired).' : e.message);
    }
  });
}

document.getElementById('logout').addEventListener('click', async () => {
  await run(() => api('DELETE', '/api/v1/session'));
  loggedOut();
});
window.addEventListener('hashchange', () => render());

api('GET', '/api/v1/session').then(loggedIn, loggedOut);
