// The operator console: sign in with a bearer token, watch the counts and the throughput, search the
// tasks, open one, and redrive many (dry run first, then a confirmation). Every view is re-rendered
// from the API's answers; every failure shows the problem the producer answered.
import { ApiError, call, session, toQuery } from './api.js';
import { renderThroughput } from './chart.js';
import { byId, formatAge, formatCount, h, timeElement } from './dom.js';
import { PRIORITIES, STATUSES } from './names.js';

/** The stats poll: often enough to watch a backlog move, rare enough to cost the database nothing. */
const STATS_EVERY_MS = 3000;
const READ_ONLY_KEY = 'task-pipeline.console.read-only';

const state = {
  /** The token itself may not redrive (the redrive route answered 403). */
  tokenReadOnly: false,
  /** The filters of the last search: the list shows them and the bulk redrive acts on them. */
  filters: {},
  order: 'newest',
  limit: 50,
  /** The cursor that opened each page visited so far (page 1: none). */
  cursors: [null],
  page: 0,
  nextCursor: null,
  listSeq: 0,
  statsTimer: undefined,
  statsInFlight: false,
  /** The dry run the confirmation step stands for. */
  pendingRedrive: null,
};

// ---------------------------------------------------------------------------------------- helpers

function showProblem(id, error) {
  const element = byId(id);
  if (!error) {
    element.hidden = true;
    element.textContent = '';
    return;
  }
  element.textContent = error instanceof ApiError ? error.describe() : String(error.message ?? error);
  element.hidden = false;
}

/** A call in the signed-in session: a 401 means the token no longer works, so the session ends. */
async function api(method, path, options) {
  try {
    return await call(method, path, options);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) endSession(err);
    throw err;
  }
}

function isReadOnly() {
  return state.tokenReadOnly || byId('read-only').checked;
}

function applyReadOnly() {
  const toggle = byId('read-only');
  if (state.tokenReadOnly) toggle.checked = true;
  toggle.disabled = state.tokenReadOnly;
  const readOnly = isReadOnly();
  byId('redrive').hidden = readOnly;
  if (readOnly) resetRedrive();
  const notice = byId('read-only-notice');
  notice.hidden = !readOnly;
  notice.textContent = state.tokenReadOnly
    ? 'Read-only: this token can look but not redrive.'
    : 'Read-only mode: redrive is hidden. Untick “Read-only” to act.';
}

// ----------------------------------------------------------------------------------------- session

async function signIn(event) {
  event.preventDefault();
  const input = byId('token');
  const token = input.value.trim();
  showProblem('sign-in-problem', null);
  try {
    // Any operator GET tells whether the token works; the stats are the cheapest.
    await call('GET', '/api/v1/task-stats', { token });
  } catch (err) {
    showProblem('sign-in-problem', err);
    input.select();
    return;
  }
  session.token = token;
  input.value = '';
  await start();
}

/** Whether the token may redrive: a dry run of one (it changes nothing) answers 403 when it may not. */
async function tokenCannotRedrive() {
  try {
    await call('POST', '/api/v1/redrive-tasks', { body: { status: ['error'], dryRun: true, limit: 1 } });
    return false;
  } catch (err) {
    return err instanceof ApiError && err.status === 403;
  }
}

async function start() {
  state.tokenReadOnly = await tokenCannotRedrive();
  if (!session.token) return;
  byId('read-only').checked = sessionStorage.getItem(READ_ONLY_KEY) === 'true';
  applyReadOnly();
  byId('sign-in').hidden = true;
  byId('console').hidden = false;
  byId('session').hidden = false;
  submitFilters();
  pollStats();
}

function endSession(problem) {
  session.token = null;
  clearTimeout(state.statsTimer);
  state.tokenReadOnly = false;
  byId('detail').close();
  byId('console').hidden = true;
  byId('session').hidden = true;
  byId('sign-in').hidden = false;
  showProblem('sign-in-problem', problem);
  byId('token').focus();
}

// ------------------------------------------------------------------------------------------- stats

function buildCountsTable() {
  const table = byId('counts');
  table.tHead.replaceChildren(
    h(
      'tr',
      {},
      h('th', { scope: 'col' }, 'Status'),
      ...PRIORITIES.map((p) => h('th', { scope: 'col', class: 'num' }, p)),
      h('th', { scope: 'col', class: 'num' }, 'all'),
    ),
  );
  const row = (status, label) =>
    h(
      'tr',
      {},
      h('th', { scope: 'row' }, status === 'all' ? label : h('span', { class: `status ${status}` }, label)),
      ...[...PRIORITIES, 'all'].map((p) => h('td', { class: 'num', id: `count-${status}-${p}` }, '–')),
    );
  table.tBodies[0].replaceChildren(...STATUSES.map((s) => row(s, s)), row('all', 'all'));
}

function setText(id, text) {
  const element = byId(id);
  // Unchanged cells are left alone: no needless reflow or screen-reader chatter.
  if (element.textContent !== text) element.textContent = text;
}

function renderStats(stats) {
  const counts = new Map();
  for (const { status, priority, count } of stats.counts ?? []) {
    counts.set(`${status}/${priority}`, (counts.get(`${status}/${priority}`) ?? 0) + count);
  }
  const byPriority = Object.fromEntries([...PRIORITIES, 'all'].map((p) => [p, 0]));
  for (const status of STATUSES) {
    let all = 0;
    for (const priority of PRIORITIES) {
      const count = counts.get(`${status}/${priority}`) ?? 0;
      all += count;
      byPriority[priority] += count;
      setText(`count-${status}-${priority}`, formatCount(count));
    }
    byPriority.all += all;
    setText(`count-${status}-all`, formatCount(all));
  }
  for (const priority of [...PRIORITIES, 'all']) {
    setText(`count-all-${priority}`, formatCount(byPriority[priority]));
  }
  setText('oldest-waiting', formatAge(stats.oldestWaitingAgeS));
  setText('oldest-sent', formatAge(stats.oldestSentAgeS));
  if (stats.staleSent) {
    setText('stale-sent-label', `Sent longer than ${formatAge(stats.staleSent.olderThanS)}`);
    setText('stale-sent', formatCount(stats.staleSent.count));
  }
  const at = stats.at ? new Date(stats.at) : new Date();
  setText('stats-at', `as of ${at.toLocaleTimeString('en-GB')}`);
  const { created, finished } = renderThroughput(byId('chart'), stats.throughput);
  setText('created-total', formatCount(created));
  setText('finished-total', formatCount(finished));
}

async function pollStats() {
  clearTimeout(state.statsTimer);
  if (!session.token || state.statsInFlight) return;
  state.statsInFlight = true;
  try {
    renderStats(await api('GET', '/api/v1/task-stats'));
    showProblem('stats-problem', null);
  } catch (err) {
    if (session.token) showProblem('stats-problem', err);
  } finally {
    state.statsInFlight = false;
  }
  // A hidden tab stops polling; it catches up when shown again (visibilitychange below).
  if (session.token && !document.hidden) state.statsTimer = setTimeout(pollStats, STATS_EVERY_MS);
}

// -------------------------------------------------------------------------------------------- list

function buildChoices(containerId, name, values) {
  byId(containerId).replaceChildren(
    ...values.map((value) =>
      h(
        'label',
        { class: 'choice' },
        h('input', { type: 'checkbox', name, value, id: `filter-${name}-${value}` }),
        ` ${value}`,
      ),
    ),
  );
}

/** The search form as the API's filters; empty fields are left out. */
function readFilters(form) {
  const data = new FormData(form);
  const filters = {};
  for (const name of ['status', 'priority']) {
    const values = data.getAll(name).map(String);
    if (values.length > 0) filters[name] = values;
  }
  for (const name of ['createdAfter', 'createdBefore', 'sentBefore']) {
    // datetime-local is the viewer's local time; the API takes an absolute ISO instant.
    const value = String(data.get(name) ?? '');
    if (value) filters[name] = new Date(value).toISOString();
  }
  for (const name of ['text', 'error']) {
    const value = String(data.get(name) ?? '').trim();
    if (value) filters[name] = value;
  }
  return filters;
}

function describeFilters(filters) {
  const parts = [];
  parts.push(filters.status ? `status ${filters.status.join(' or ')}` : 'any status');
  if (filters.priority) parts.push(`priority ${filters.priority.join(' or ')}`);
  if (filters.text) parts.push(`text contains “${filters.text}”`);
  if (filters.error) parts.push(`error contains “${filters.error}”`);
  if (filters.createdAfter) parts.push(`created after ${filters.createdAfter}`);
  if (filters.createdBefore) parts.push(`created before ${filters.createdBefore}`);
  if (filters.sentBefore) parts.push(`sent before ${filters.sentBefore}`);
  return parts.join(' · ');
}

function submitFilters() {
  const form = byId('filters');
  const data = new FormData(form);
  state.filters = readFilters(form);
  state.order = String(data.get('order') ?? 'newest');
  state.limit = Number(data.get('limit') ?? 50);
  state.cursors = [null];
  state.page = 0;
  resetRedrive();
  byId('redrive-selection').textContent = describeFilters(state.filters);
  return loadList();
}

function taskRow(task) {
  const open = h(
    'button',
    {
      type: 'button',
      class: 'link mono',
      'aria-label': `Open task ${task.taskId}`,
      'data-task-id': task.taskId,
      onclick: () => openDetail(task.taskId),
    },
    `${task.taskId.slice(0, 8)}…`,
  );
  return h(
    'tr',
    {},
    h('td', {}, open),
    h('td', {}, h('span', { class: `status ${task.status}` }, task.status)),
    h('td', {}, task.priority),
    h('td', { class: 'num' }, formatCount(task.attempts)),
    h('td', { class: 'num nowrap' }, timeElement(task.createdAt)),
    h('td', { class: 'clip', title: task.text }, task.text),
    h('td', { class: 'clip', title: task.error ?? '' }, task.error ?? ''),
  );
}

function renderPager() {
  byId('page-first').disabled = state.page === 0;
  byId('page-previous').disabled = state.page === 0;
  byId('page-next').disabled = !state.nextCursor;
  setText('page-number', `page ${state.page + 1}`);
}

async function loadList() {
  const seq = ++state.listSeq;
  const table = byId('task-list');
  table.setAttribute('aria-busy', 'true');
  const query = toQuery({
    ...state.filters,
    order: state.order,
    limit: state.limit,
    cursor: state.cursors[state.page],
  });
  try {
    const page = await api('GET', `/api/v1/tasks${query}`);
    // A slower answer to an older search must not overwrite a newer one.
    if (seq !== state.listSeq) return;
    state.nextCursor = page.nextCursor ?? null;
    const rows = page.items.map(taskRow);
    table.tBodies[0].replaceChildren(
      ...(rows.length > 0
        ? rows
        : [
            h(
              'tr',
              {},
              h(
                'td',
                { colspan: 7, class: 'muted' },
                // A page examines a bounded number of tasks: a selective search may find none on one
                // page and still have more to look through.
                state.nextCursor
                  ? 'None among the tasks this page looked at; Next searches on.'
                  : 'No task matches.',
              ),
            ),
          ]),
    );
    setText(
      'list-summary',
      `${formatCount(page.items.length)} task${page.items.length === 1 ? '' : 's'} on this page` +
        (state.nextCursor ? '; more on the next' : ''),
    );
    showProblem('list-problem', null);
  } catch (err) {
    if (seq !== state.listSeq) return;
    state.nextCursor = null;
    table.tBodies[0].replaceChildren();
    setText('list-summary', '');
    showProblem('list-problem', err);
  } finally {
    if (seq === state.listSeq) {
      table.removeAttribute('aria-busy');
      renderPager();
    }
  }
}

function turnPage(to) {
  if (to > state.page) state.cursors[to] = state.nextCursor;
  state.page = to;
  state.cursors.length = to + 1;
  return loadList();
}

// ------------------------------------------------------------------------------------------ detail

/**
 * The task's life as a timeline, oldest first: created, then per attempt sent and finished, each
 * redrive (what it reset: the history keeps what the row forgot), and the last update.
 */
function timeline(task) {
  const history = task.history ?? {};
  const events = [[history.createdAt ?? task.createdAt, 'created', `priority ${task.priority}`]];
  for (const redrive of history.redrives ?? []) {
    if (redrive.sentAt) events.push([redrive.sentAt, 'sent', `attempt ${redrive.attempt}`]);
    if (redrive.finishedAt) {
      events.push([redrive.finishedAt, 'finished', `attempt ${redrive.attempt}, ${redrive.fromStatus}`]);
    }
    events.push([
      redrive.at,
      'redriven',
      `from ${redrive.fromStatus}, attempt ${redrive.attempt}` +
        (redrive.error ? `; error was “${redrive.error}”` : ''),
    ]);
  }
  const sentAt = history.sentAt !== undefined ? history.sentAt : task.sentAt;
  const finishedAt = history.finishedAt !== undefined ? history.finishedAt : task.finishedAt;
  if (sentAt) events.push([sentAt, 'sent', `attempt ${task.attempts}`]);
  if (finishedAt) {
    events.push([
      finishedAt,
      'finished',
      `attempt ${task.attempts}, ${task.status}${task.error ? `: “${task.error}”` : ''}`,
    ]);
  }
  events.push([history.updatedAt ?? task.updatedAt, 'last update', '']);
  // Stable sort: events of the same instant keep their order of occurrence.
  return events.filter(([at]) => at).sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
}

function renderHistory(task) {
  return h(
    'div',
    {},
    h('h3', {}, 'History'),
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        { class: 'history', id: 'detail-history' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'When'),
            h('th', { scope: 'col' }, 'What'),
            h('th', { scope: 'col' }, 'Details'),
          ),
        ),
        h(
          'tbody',
          {},
          ...timeline(task).map(([at, what, details]) =>
            h(
              'tr',
              {},
              h('td', { class: 'tnum nowrap' }, timeElement(at)),
              h('td', {}, what),
              h('td', {}, details),
            ),
          ),
        ),
      ),
    ),
  );
}

function renderDetail(task) {
  const field = (label, value) => h('div', {}, h('dt', {}, label), h('dd', {}, value));
  byId('detail-body').replaceChildren(
    h(
      'dl',
      { class: 'fields' },
      field('Task id', h('span', { class: 'mono', id: 'detail-task-id' }, task.taskId)),
      field('Status', h('span', { class: `status ${task.status}`, id: 'detail-status' }, task.status)),
      field('Priority', task.priority),
      field('Attempts', h('span', { class: 'num' }, formatCount(task.attempts))),
      field('Created', timeElement(task.createdAt)),
      field('Sent', timeElement(task.sentAt)),
      field('Finished', timeElement(task.finishedAt)),
      field('Updated', timeElement(task.updatedAt)),
      field('Error', task.error ?? '–'),
    ),
    h('h3', {}, 'Text'),
    h('p', { class: 'text', id: 'detail-text' }, task.text),
    renderHistory(task),
  );
}

async function openDetail(taskId) {
  const dialog = byId('detail');
  setText('detail-title', `Task ${taskId.slice(0, 8)}…`);
  byId('detail-body').replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  showProblem('detail-problem', null);
  if (!dialog.open) dialog.showModal();
  byId('detail-title').focus();
  try {
    renderDetail(await api('GET', `/api/v1/tasks/${encodeURIComponent(taskId)}`));
  } catch (err) {
    byId('detail-body').replaceChildren();
    showProblem('detail-problem', err);
  }
}

// ----------------------------------------------------------------------------------------- redrive

function resetRedrive() {
  state.pendingRedrive = null;
  byId('redrive-confirm').hidden = true;
  setText('redrive-matched', '');
}

async function countRedrive(event) {
  event.preventDefault();
  const limit = Number(byId('redrive-limit').value);
  resetRedrive();
  setText('redrive-result', '');
  showProblem('redrive-problem', null);
  const filters = state.filters;
  try {
    const answer = await api('POST', '/api/v1/redrive-tasks', { body: { ...filters, dryRun: true, limit } });
    const batch = Math.min(answer.matched, limit);
    if (batch === 0) {
      setText('redrive-result', 'Dry run: no error or sent task matches; nothing to redrive.');
      return;
    }
    state.pendingRedrive = { filters, limit };
    setText(
      'redrive-matched',
      `Dry run: ${formatCount(answer.matched)} task${answer.matched === 1 ? '' : 's'} match` +
        (answer.matched > limit ? `; this call redrives at most ${formatCount(limit)}.` : '.'),
    );
    setText('redrive-go', `Redrive ${formatCount(batch)} task${batch === 1 ? '' : 's'}`);
    byId('redrive-confirm').hidden = false;
    byId('redrive-go').focus();
  } catch (err) {
    showProblem('redrive-problem', err);
    if (err instanceof ApiError && err.status === 403) {
      state.tokenReadOnly = true;
      applyReadOnly();
    }
  }
}

async function confirmRedrive() {
  const pending = state.pendingRedrive;
  if (!pending) return;
  resetRedrive();
  try {
    const answer = await api('POST', '/api/v1/redrive-tasks', {
      body: { ...pending.filters, dryRun: false, limit: pending.limit },
    });
    setText(
      'redrive-result',
      `Redriven: ${formatCount(answer.redriven)} task${answer.redriven === 1 ? '' : 's'} back to waiting.`,
    );
    byId('redrive-count').focus();
    loadList();
    pollStats();
  } catch (err) {
    showProblem('redrive-problem', err);
  }
}

// -------------------------------------------------------------------------------------------- wire

function init() {
  buildCountsTable();
  buildChoices('filter-status', 'status', STATUSES);
  buildChoices('filter-priority', 'priority', PRIORITIES);

  byId('sign-in-form').addEventListener('submit', signIn);
  byId('sign-out').addEventListener('click', () => endSession(null));
  byId('read-only').addEventListener('change', (event) => {
    sessionStorage.setItem(READ_ONLY_KEY, String(event.target.checked));
    applyReadOnly();
  });

  const filters = byId('filters');
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    submitFilters();
  });
  // The reset event fires before the fields are cleared: search once they are.
  filters.addEventListener('reset', () => setTimeout(submitFilters, 0));
  byId('page-first').addEventListener('click', () => turnPage(0));
  byId('page-previous').addEventListener('click', () => turnPage(state.page - 1));
  byId('page-next').addEventListener('click', () => turnPage(state.page + 1));

  byId('detail-close').addEventListener('click', () => byId('detail').close());
  byId('redrive-form').addEventListener('submit', countRedrive);
  byId('redrive-go').addEventListener('click', confirmRedrive);
  byId('redrive-cancel').addEventListener('click', () => {
    resetRedrive();
    byId('redrive-count').focus();
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) pollStats();
  });

  if (session.token) {
    // A reload keeps the tab's token; a token that stopped working ends the session with its problem.
    call('GET', '/api/v1/task-stats')
      .then(() => start())
      .catch((err) => (err instanceof ApiError && err.status === 401 ? endSession(err) : start()));
  } else {
    byId('token').focus();
  }
}

init();
