import { initialLanguage, saveLanguage } from '../i18n.js';
import { en } from './i18n/en.js';
import { ru } from './i18n/ru.js';

/*
 * The admin page: the same approach as the main page (static markup in index.html, a state
 * object, render functions, the JSON API), no framework and no build step. It shares the main
 * page's token (same origin, same localStorage key), so a staff member signed in at `/` is signed
 * in here too. The server decides who is staff: every admin call is checked there, and a 403
 * shows the "not an admin" page with no data.
 */

const TOKEN_KEY = 'referral.token';
const PAGE_SIZE = 25;
const AUDIT_TYPES = [
  'sign_in',
  'sign_in_failed',
  'code_sent',
  'invite_activated',
  'logout',
  'logout_all',
  'admin_block',
  'admin_unblock',
  'admin_revoke_tokens',
  'admin_grant',
  'admin_revoke',
  'sms_region_budget_hit',
];
const STATS = [
  'users_total',
  'users_last_24h',
  'activations_total',
  'activations_last_24h',
  'sign_ins_last_24h',
];
const dictionaries = { en, ru };

/**
 * @typedef {{ id: number, phone_number: string, invite_code: string, joined_at: string,
 *   is_staff: boolean, is_blocked: boolean, referrals_count: number, referrer_id: number | null,
 *   flags_count: number }} AdminUser
 * @typedef {{ id: number, phone_number: string, activated_at: string }} Referral
 * @typedef {{ id: number, at: string, type: string, actor: string, actor_id: number | null,
 *   user_id: number | null, ip: string | null, details: Record<string, unknown> }} AuditEntry
 * @typedef {{ key: string, params?: Record<string, string | number> }} Message
 */

const state = {
  /** @type {'en' | 'ru'} */
  lang: initialLanguage(),
  /** @type {'loading' | 'phone' | 'code' | 'denied' | 'users' | 'user' | 'audit'} */
  view: 'loading',
  token: readToken(),
  /** @type {{ phone: string, devCode: string | null } | null} */
  pending: null,
  /** The signed-in account's number, shown on the "not an admin" page. @type {string | null} */
  myPhone: null,
  /** @type {Record<string, any> | null} */
  stats: null,
  users: {
    q: '',
    sort: '-joined_at',
    /** @type {AdminUser[]} */ results: [],
    /** @type {number | null} */ count: null,
    /** @type {string | null} */ next: null,
  },
  /** @type {(AdminUser & { referrer: AdminUser | null, active_tokens: number, flags: unknown[] }) | null} */
  user: null,
  /** @type {{ results: Referral[], count: number, next: string | null }} */
  referrals: { results: [], count: 0, next: null },
  /** @type {{ results: AuditEntry[], next: string | null }} */
  userAudit: { results: [], next: null },
  audit: {
    type: '',
    userId: '',
    /** @type {AuditEntry[]} */ results: [],
    /** @type {{ count: number, exact: boolean } | null} */ count: null,
    /** @type {string | null} */ next: null,
  },
  /** @type {Record<string, Message | null>} */
  errors: {},
  /** @type {Message | null} */
  status: null,
  /** Incremented on every navigation, so that late answers for an old view are dropped. */
  epoch: 0,
};

/** @param {string} id */
function $(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from admin/index.html`);
  return element;
}

const el = {
  status: $('status'),
  logout: /** @type {HTMLButtonElement} */ ($('logout-btn')),
  adminArea: $('admin-area'),
  views: {
    loading: $('view-loading'),
    phone: $('view-phone'),
    code: $('view-code'),
    denied: $('view-denied'),
    users: $('view-users'),
    user: $('view-user'),
    audit: $('view-audit'),
  },
  headings: {
    loading: $('loading-text'),
    phone: $('phone-heading'),
    code: $('code-heading'),
    denied: $('denied-heading'),
    users: $('users-heading'),
    user: $('user-heading'),
    audit: $('audit-heading'),
  },
  tabs: { users: $('tab-users'), audit: $('tab-audit') },
  loadingError: $('loading-error'),
  loadingRetry: $('loading-retry'),
  phoneForm: /** @type {HTMLFormElement} */ ($('phone-form')),
  phoneInput: /** @type {HTMLInputElement} */ ($('phone-input')),
  phoneError: $('phone-error'),
  codeLead: $('code-lead'),
  devCode: $('dev-code'),
  devCodeValue: $('dev-code-value'),
  codeForm: /** @type {HTMLFormElement} */ ($('code-form')),
  codeInput: /** @type {HTMLInputElement} */ ($('code-input')),
  codeError: $('code-error'),
  changePhone: $('change-phone-btn'),
  deniedText: $('denied-text'),
  deniedLogout: $('denied-logout-btn'),
  stats: $('stats'),
  statsError: $('stats-error'),
  topReferrers: $('top-referrers'),
  topEmpty: $('top-empty'),
  searchForm: /** @type {HTMLFormElement} */ ($('search-form')),
  searchInput: /** @type {HTMLInputElement} */ ($('search-input')),
  sortSelect: /** @type {HTMLSelectElement} */ ($('sort-select')),
  searchError: $('search-error'),
  searchCount: $('search-count'),
  usersTable: $('users-table'),
  usersBody: $('users-body'),
  usersMore: /** @type {HTMLButtonElement} */ ($('users-more-btn')),
  userBadges: $('user-badges'),
  userError: $('user-error'),
  blockButton: /** @type {HTMLButtonElement} */ ($('block-btn')),
  unblockButton: /** @type {HTMLButtonElement} */ ($('unblock-btn')),
  revokeButton: /** @type {HTMLButtonElement} */ ($('revoke-btn')),
  userDetails: $('user-details'),
  userReferrer: $('user-referrer'),
  userFlags: $('user-flags'),
  userReferralsCount: $('user-referrals-count'),
  userReferralsEmpty: $('user-referrals-empty'),
  userReferrals: $('user-referrals'),
  referralsMore: /** @type {HTMLButtonElement} */ ($('referrals-more-btn')),
  userAuditEmpty: $('user-audit-empty'),
  userAuditTable: $('user-audit-table'),
  userAuditBody: $('user-audit-body'),
  userAuditMore: /** @type {HTMLButtonElement} */ ($('user-audit-more-btn')),
  auditForm: /** @type {HTMLFormElement} */ ($('audit-form')),
  auditType: /** @type {HTMLSelectElement} */ ($('audit-type')),
  auditUser: /** @type {HTMLInputElement} */ ($('audit-user')),
  auditError: $('audit-error'),
  auditCount: $('audit-count'),
  auditTable: $('audit-table'),
  auditBody: $('audit-body'),
  auditMore: /** @type {HTMLButtonElement} */ ($('audit-more-btn')),
  dialog: /** @type {HTMLDialogElement} */ ($('confirm-dialog')),
  dialogHeading: $('confirm-heading'),
  dialogText: $('confirm-text'),
  dialogOk: $('confirm-ok'),
};

/**
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
function t(key, params = {}) {
  const dict = /** @type {Record<string, string>} */ (dictionaries[state.lang]);
  const template = dict[key] ?? /** @type {Record<string, string>} */ (en)[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) =>
    name in params ? String(params[name]) : match,
  );
}

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  /**
   * @param {number} status 0 when the server could not be reached
   * @param {Record<string, any> | null} body
   */
  constructor(status, body) {
    super(typeof body?.error === 'string' ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
    /** True when the error was dealt with already (a 401 or 403 changed the view). */
    this.handled = false;
  }
}

/**
 * @param {'GET' | 'POST'} method
 * @param {string} path
 * @param {Record<string, unknown>} [body]
 * @returns {Promise<any>}
 */
async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (body) headers['Content-Type'] = 'application/json';
  const sentToken = state.token;
  if (sentToken) headers.Authorization = `Token ${sentToken}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null);
  }
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  const error = new ApiError(response.status, data);
  if (sentToken && sentToken === state.token) {
    if (response.status === 401) {
      // Revoked, expired, or the account was blocked: start over.
      signOutLocally({ key: 'status.sessionEnded' });
      error.handled = true;
    } else if (response.status === 403 && path.startsWith('/api/admin/')) {
      // Not staff (or no longer): show no data.
      void showDenied();
      error.handled = true;
    }
  }
  throw error;
}

/** @param {unknown} error @returns {Message} */
function messageOf(error) {
  if (!(error instanceof ApiError)) return { key: 'error.server' };
  if (error.status === 0) return { key: 'error.network' };
  const code = error.body.code;
  switch (code) {
    case 'invalid_code':
      return { key: 'error.invalid_code', params: { attempts: error.body.attempts_left ?? 0 } };
    case 'rate_limited':
      return { key: 'error.rate_limited', params: { seconds: error.body.retry_after ?? 60 } };
    case 'invalid_phone':
    case 'code_expired':
    case 'too_many_attempts':
    case 'forbidden':
    case 'validation_error':
      return { key: `error.${code}` };
  }
  return { key: 'error.server' };
}

// ---------------------------------------------------------------------------------------------
// Session

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** @param {string | null} token */
function writeToken(token) {
  state.token = token;
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage unavailable: the session lasts for the page.
  }
}

/** @param {Message | null} status */
function signOutLocally(status) {
  writeToken(null);
  state.epoch += 1;
  state.myPhone = null;
  state.stats = null;
  state.user = null;
  state.pending = null;
  state.status = status;
  show('phone');
}

async function signOut() {
  const token = state.token;
  signOutLocally({ key: 'status.signedOut' });
  if (!token) return;
  try {
    await fetch('/api/auth/logout/', {
      method: 'POST',
      headers: { Authorization: `Token ${token}` },
      cache: 'no-store',
    });
  } catch {
    // Signed out here either way.
  }
}

/** Checks the token against the admin API, then shows the page the address asks for. */
async function enter() {
  show('loading');
  state.errors.loading = null;
  render();
  try {
    state.stats = await api('GET', '/api/admin/stats/');
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    state.errors.loading = messageOf(error);
    render();
    return;
  }
  el.auditType.replaceChildren(
    ...['', ...AUDIT_TYPES].map((type) => {
      const option = document.createElement('option');
      option.value = type;
      return option;
    }),
  );
  route();
}

async function showDenied() {
  const epoch = ++state.epoch;
  show('denied');
  try {
    const profile = await api('GET', '/api/profile/');
    if (epoch !== state.epoch) return;
    state.myPhone = profile.phone_number;
    render();
  } catch {
    // The page says "not an admin" without the number.
  }
}

// ---------------------------------------------------------------------------------------------
// Navigation

function route() {
  if (!state.token) return show('phone');
  if (state.stats === null) return void enter();
  const match = /^#\/users\/(\d+)$/.exec(location.hash);
  if (match) return void openUser(Number(match[1]));
  if (location.hash === '#/audit') return void openAudit();
  void openUsers();
}

/** @param {typeof state.view} view */
function show(view) {
  const changed = state.view !== view;
  state.view = view;
  render();
  if (changed || view === 'user') {
    const heading = el.headings[view];
    if (heading && view !== 'loading') heading.focus();
  }
}

// ---------------------------------------------------------------------------------------------
// Users and totals

async function openUsers() {
  const epoch = ++state.epoch;
  state.status = null;
  show('users');
  await Promise.all([loadStats(epoch), searchUsers(epoch, false)]);
}

/** @param {number} epoch */
async function loadStats(epoch) {
  try {
    const stats = await api('GET', '/api/admin/stats/');
    if (epoch !== state.epoch) return;
    state.stats = stats;
    state.errors.stats = null;
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    state.errors.stats = messageOf(error);
  }
  render();
}

/**
 * @param {number} epoch
 * @param {boolean} more the next page of the current search
 */
async function searchUsers(epoch, more) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), sort: state.users.sort });
  if (state.users.q) params.set('q', state.users.q);
  if (more && state.users.next) params.set('cursor', state.users.next);
  try {
    const page = await api('GET', `/api/admin/users/?${params}`);
    if (epoch !== state.epoch) return;
    state.users.results = more ? [...state.users.results, ...page.results] : page.results;
    state.users.count = page.count;
    state.users.next = page.next_cursor;
    state.errors.search = null;
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    state.errors.search =
      error instanceof ApiError && error.body.fields?.q
        ? { key: 'search.tooShort' }
        : messageOf(error);
    state.users.results = [];
    state.users.count = null;
    state.users.next = null;
  }
  render();
}

// ---------------------------------------------------------------------------------------------
// One user

/** @param {number} id */
async function openUser(id) {
  const epoch = ++state.epoch;
  if (state.user?.id !== id) {
    state.user = null;
    state.status = null;
  }
  state.errors.user = null;
  show('user');
  try {
    const [user, audit] = await Promise.all([
      api('GET', `/api/admin/users/${id}/`),
      api('GET', `/api/admin/audit/?user_id=${id}&limit=${PAGE_SIZE}`),
    ]);
    if (epoch !== state.epoch) return;
    state.user = user;
    state.referrals = {
      results: user.referrals.results,
      count: user.referrals.count,
      next: user.referrals.next_cursor,
    };
    state.userAudit = { results: audit.results, next: audit.next_cursor };
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    if (epoch !== state.epoch) return;
    state.user = null;
    state.errors.user =
      error instanceof ApiError && error.status === 404
        ? { key: 'user.notFound' }
        : messageOf(error);
  }
  render();
  el.headings.user.focus();
}

async function moreReferrals() {
  const user = state.user;
  if (!user || !state.referrals.next) return;
  const epoch = state.epoch;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), cursor: state.referrals.next });
  try {
    const page = await api('GET', `/api/admin/users/${user.id}/referrals/?${params}`);
    if (epoch !== state.epoch) return;
    state.referrals = {
      results: [...state.referrals.results, ...page.results],
      count: page.count,
      next: page.next_cursor,
    };
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    state.errors.user = messageOf(error);
  }
  render();
}

async function moreUserAudit() {
  const user = state.user;
  if (!user || !state.userAudit.next) return;
  const epoch = state.epoch;
  const params = new URLSearchParams({
    user_id: String(user.id),
    limit: String(PAGE_SIZE),
    cursor: state.userAudit.next,
  });
  try {
    const page = await api('GET', `/api/admin/audit/?${params}`);
    if (epoch !== state.epoch) return;
    state.userAudit = {
      results: [...state.userAudit.results, ...page.results],
      next: page.next_cursor,
    };
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    state.errors.user = messageOf(error);
  }
  render();
}

/**
 * @param {'block' | 'unblock' | 'revoke-tokens'} action
 */
async function changeUser(action) {
  const user = state.user;
  if (!user) return;
  const phone = user.phone_number;
  if (action === 'block' || action === 'revoke-tokens') {
    const block = action === 'block';
    const confirmed = await confirmDialog(
      t(block ? 'confirm.blockTitle' : 'confirm.revokeTitle', { phone }),
      t(block ? 'confirm.blockText' : 'confirm.revokeText'),
      t(block ? 'confirm.blockOk' : 'confirm.revokeOk'),
    );
    if (!confirmed) return;
  }
  try {
    const result = await api('POST', `/api/admin/users/${user.id}/${action}/`);
    const key = {
      block: 'done.blocked',
      unblock: 'done.unblocked',
      'revoke-tokens': 'done.revoked',
    }[action];
    state.status = { key, params: { phone, count: result.revoked } };
    state.errors.user = null;
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    state.errors.user = messageOf(error);
    render();
    return;
  }
  await openUser(user.id);
}

/**
 * A modal question; resolves true when the person confirms.
 * @param {string} title @param {string} text @param {string} ok
 * @returns {Promise<boolean>}
 */
function confirmDialog(title, text, ok) {
  el.dialogHeading.textContent = title;
  el.dialogText.textContent = text;
  el.dialogOk.textContent = ok;
  el.dialog.returnValue = '';
  el.dialog.showModal();
  return new Promise((resolve) => {
    el.dialog.addEventListener('close', () => resolve(el.dialog.returnValue === 'ok'), {
      once: true,
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Audit log

async function openAudit() {
  const epoch = ++state.epoch;
  state.status = null;
  show('audit');
  await loadAudit(epoch, false);
}

/** @param {number} epoch @param {boolean} more */
async function loadAudit(epoch, more) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.audit.type) params.set('type', state.audit.type);
  if (state.audit.userId) params.set('user_id', state.audit.userId);
  if (more && state.audit.next) params.set('cursor', state.audit.next);
  try {
    const page = await api('GET', `/api/admin/audit/?${params}`);
    if (epoch !== state.epoch) return;
    state.audit.results = more ? [...state.audit.results, ...page.results] : page.results;
    state.audit.count = { count: page.count, exact: page.count_exact };
    state.audit.next = page.next_cursor;
    state.errors.audit = null;
  } catch (error) {
    if (error instanceof ApiError && error.handled) return;
    state.errors.audit = messageOf(error);
  }
  render();
}

// ---------------------------------------------------------------------------------------------
// Rendering

function render() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll('[data-i18n]')) {
    node.textContent = t(/** @type {string} */ (node.getAttribute('data-i18n')));
  }
  for (const node of document.querySelectorAll('[data-i18n-aria-label]')) {
    node.setAttribute(
      'aria-label',
      t(/** @type {string} */ (node.getAttribute('data-i18n-aria-label'))),
    );
  }
  for (const button of document.querySelectorAll('.lang-btn')) {
    button.setAttribute('aria-pressed', String(button.getAttribute('data-lang') === state.lang));
  }
  const adminView = state.view === 'users' || state.view === 'user' || state.view === 'audit';
  for (const [name, view] of Object.entries(el.views)) view.hidden = name !== state.view;
  el.adminArea.hidden = !adminView;
  el.logout.hidden = !state.token || state.view === 'phone' || state.view === 'code';
  setCurrent(el.tabs.users, state.view === 'users' || state.view === 'user');
  setCurrent(el.tabs.audit, state.view === 'audit');
  el.status.textContent = state.status ? t(state.status.key, state.status.params) : '';
  setError(el.loadingError, state.errors.loading);
  el.loadingRetry.hidden = !state.errors.loading;
  setError(el.phoneError, state.errors.phone);
  setError(el.codeError, state.errors.code);
  el.phoneInput.setAttribute('aria-invalid', String(Boolean(state.errors.phone)));
  el.codeInput.setAttribute('aria-invalid', String(Boolean(state.errors.code)));
  if (state.pending) {
    el.codeLead.textContent = t('code.lead', { phone: state.pending.phone });
    el.devCode.hidden = !state.pending.devCode;
    el.devCodeValue.textContent = state.pending.devCode ?? '';
  }
  el.deniedText.textContent = state.myPhone
    ? t('denied.text', { phone: state.myPhone })
    : t('denied.textNoPhone');
  renderStats();
  renderUsers();
  renderUser();
  renderAudit();
  const title =
    state.view === 'user' && state.user
      ? t('title.user', { phone: state.user.phone_number })
      : t(titleKey());
  document.title = `${title} · ${t('title.suffix')}`;
}

/** @param {HTMLElement} tab @param {boolean} current */
function setCurrent(tab, current) {
  if (current) tab.setAttribute('aria-current', 'page');
  else tab.removeAttribute('aria-current');
}

function titleKey() {
  switch (state.view) {
    case 'phone':
      return 'title.phone';
    case 'code':
      return 'title.code';
    case 'denied':
      return 'title.denied';
    case 'audit':
      return 'title.audit';
    case 'loading':
      return 'app.loading';
    default:
      return 'title.users';
  }
}

/** @param {HTMLElement} node @param {Message | null | undefined} message */
function setError(node, message) {
  node.textContent = message ? t(message.key, message.params) : '';
}

function numberFormat() {
  return new Intl.NumberFormat(state.lang === 'ru' ? 'ru-RU' : 'en-US');
}

/** @param {string} iso @param {boolean} [seconds] */
function formatTime(iso, seconds = false) {
  return new Intl.DateTimeFormat(state.lang === 'ru' ? 'ru-RU' : 'en-GB', {
    dateStyle: 'medium',
    timeStyle: seconds ? 'medium' : 'short',
  }).format(new Date(iso));
}

/**
 * @param {string} tag
 * @param {{ className?: string, text?: string, href?: string }} [options]
 * @param {Node[]} [children]
 */
function make(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined) node.textContent = options.text;
  if (options.href !== undefined) node.setAttribute('href', options.href);
  for (const child of children) node.append(child);
  return node;
}

/** @param {number} id @param {string} text */
function userLink(id, text) {
  return make('a', { href: `#/users/${id}`, text, className: 'mono' });
}

/** @param {AdminUser} user */
function badges(user) {
  const list = [];
  if (user.is_blocked)
    list.push(make('span', { className: 'badge badge-blocked', text: t('badge.blocked') }));
  if (user.is_staff) list.push(make('span', { className: 'badge', text: t('badge.staff') }));
  if (list.length === 0)
    list.push(make('span', { className: 'badge badge-ok', text: t('badge.active') }));
  return list;
}

function renderStats() {
  const stats = state.stats;
  const number = numberFormat();
  el.stats.replaceChildren(
    ...(stats
      ? STATS.map((key) =>
          make('div', { className: 'stat' }, [
            make('dt', { text: t(`stats.${key}`) }),
            make('dd', { text: number.format(stats[key] ?? 0) }),
          ]),
        )
      : []),
  );
  setError(el.statsError, state.errors.stats);
  const top = stats?.top_referrers ?? [];
  el.topReferrers.replaceChildren(
    ...top.map((/** @type {{ id: number, phone_number: string, referrals_count: number }} */ r) =>
      make('li', {}, [
        userLink(r.id, r.phone_number),
        make('span', {
          className: 'muted',
          text: t('stats.referrals', { count: number.format(r.referrals_count) }),
        }),
      ]),
    ),
  );
  el.topEmpty.hidden = !stats || top.length > 0;
}

function renderUsers() {
  const { results, count, next } = state.users;
  const number = numberFormat();
  setError(el.searchError, state.errors.search);
  el.searchCount.textContent =
    count === null
      ? ''
      : count === 0
        ? t('search.none')
        : state.users.q
          ? t('search.count', { count: number.format(count) })
          : t('search.countAll', { count: number.format(count) });
  el.usersTable.hidden = results.length === 0;
  el.usersBody.replaceChildren(
    ...results.map((user) =>
      make('tr', {}, [
        make('td', {}, [userLink(user.id, user.phone_number)]),
        make('td', { className: 'mono', text: user.invite_code }),
        make('td', { text: formatTime(user.joined_at) }),
        make('td', { className: 'num', text: number.format(user.referrals_count) }),
        make('td', {}, badges(user)),
      ]),
    ),
  );
  el.usersMore.hidden = !next;
}

function renderUser() {
  const user = state.user;
  setError(el.userError, state.errors.user);
  const actions = [el.blockButton, el.unblockButton, el.revokeButton];
  if (!user) {
    el.headings.user.textContent = state.errors.user ? t('user.notFound') : t('app.loading');
    for (const button of actions) button.hidden = true;
    el.userBadges.replaceChildren();
    el.userDetails.replaceChildren();
    el.userReferrer.replaceChildren();
    el.userFlags.textContent = '';
    el.userReferrals.replaceChildren();
    el.userReferralsCount.textContent = '';
    el.userReferralsEmpty.hidden = true;
    el.referralsMore.hidden = true;
    el.userAuditTable.hidden = true;
    el.userAuditEmpty.hidden = true;
    el.userAuditMore.hidden = true;
    return;
  }
  const number = numberFormat();
  el.headings.user.textContent = user.phone_number;
  el.userBadges.replaceChildren(...badges(user));
  el.blockButton.hidden = user.is_blocked;
  el.unblockButton.hidden = !user.is_blocked;
  el.revokeButton.hidden = false;
  /** @type {[string, string][]} */
  const rows = [
    ['user.id', String(user.id)],
    ['user.inviteCode', user.invite_code],
    ['user.joined', formatTime(user.joined_at)],
    ['user.activeTokens', number.format(user.active_tokens)],
    ['user.referralsTotal', number.format(user.referrals_count)],
  ];
  el.userDetails.replaceChildren(
    ...rows.map(([key, value]) =>
      make('div', { className: 'detail' }, [
        make('dt', { text: t(key) }),
        make('dd', { text: value }),
      ]),
    ),
  );
  el.userReferrer.replaceChildren(
    user.referrer
      ? userLink(user.referrer.id, user.referrer.phone_number)
      : make('span', { className: 'muted', text: t('user.noReferrer') }),
  );
  el.userFlags.textContent =
    user.flags.length === 0
      ? t('user.noFlags')
      : user.flags.map((f) => JSON.stringify(f)).join(', ');
  const referrals = state.referrals;
  el.userReferralsCount.textContent = t('user.referralsCount', {
    count: number.format(referrals.count),
  });
  el.userReferralsEmpty.hidden = referrals.count > 0;
  el.userReferrals.replaceChildren(
    ...referrals.results.map((r) =>
      make('li', {}, [
        userLink(r.id, r.phone_number),
        make('time', { text: formatTime(r.activated_at) }),
      ]),
    ),
  );
  for (const [i, r] of referrals.results.entries()) {
    el.userReferrals.children[i]?.querySelector('time')?.setAttribute('datetime', r.activated_at);
  }
  el.referralsMore.hidden = !referrals.next;
  const audit = state.userAudit;
  el.userAuditEmpty.hidden = audit.results.length > 0;
  el.userAuditTable.hidden = audit.results.length === 0;
  el.userAuditBody.replaceChildren(...audit.results.map((entry) => auditRow(entry, false)));
  el.userAuditMore.hidden = !audit.next;
}

function renderAudit() {
  const selected = state.audit.type;
  for (const option of el.auditType.options) {
    option.textContent = option.value ? t(`type.${option.value}`) : t('audit.allTypes');
  }
  el.auditType.value = selected;
  setError(el.auditError, state.errors.audit);
  el.auditUser.setAttribute('aria-invalid', String(Boolean(state.errors.audit)));
  const count = state.audit.count;
  const number = numberFormat();
  el.auditCount.textContent = count
    ? t(count.exact ? 'audit.count' : 'audit.countMore', { count: number.format(count.count) })
    : '';
  el.auditTable.hidden = state.audit.results.length === 0;
  el.auditBody.replaceChildren(...state.audit.results.map((entry) => auditRow(entry, true)));
  el.auditMore.hidden = !state.audit.next;
}

/** @param {AuditEntry} entry @param {boolean} withUser */
function auditRow(entry, withUser) {
  const actor =
    entry.actor === 'cli' || entry.actor === 'system'
      ? make('span', { text: t(`audit.${entry.actor}`) })
      : entry.actor_id !== null
        ? userLink(entry.actor_id, t('audit.userId', { id: entry.actor_id }))
        : make('span', { className: 'muted', text: t('audit.anonymous') });
  const time = make('time', { text: formatTime(entry.at, true) });
  time.setAttribute('datetime', entry.at);
  const cells = [make('td', {}, [time]), make('td', { text: t(`type.${entry.type}`) })];
  if (withUser) {
    cells.push(
      make('td', {}, [
        entry.user_id !== null
          ? userLink(entry.user_id, t('audit.userId', { id: entry.user_id }))
          : make('span', { className: 'muted', text: '—' }),
      ]),
    );
  }
  cells.push(
    make('td', {}, [actor]),
    make('td', { className: 'mono', text: entry.ip ?? '—' }),
    make('td', {
      className: 'details-cell mono',
      text: Object.entries(entry.details)
        .map(
          ([key, value]) => `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`,
        )
        .join(', '),
    }),
  );
  const row = make('tr', {}, cells);
  row.setAttribute('data-type', entry.type);
  return row;
}

// ---------------------------------------------------------------------------------------------
// Events

el.phoneForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const phone = el.phoneInput.value.trim();
  if (!phone) {
    state.errors.phone = { key: 'error.required.phone' };
    return render();
  }
  state.errors.phone = null;
  state.status = null;
  render();
  try {
    const sent = await api('POST', '/api/auth/request-code/', { phone_number: phone });
    state.pending = { phone, devCode: sent.dev_code ?? null };
    state.errors.code = null;
    el.codeInput.value = '';
    show('code');
  } catch (error) {
    state.errors.phone = messageOf(error);
    render();
  }
});

el.codeForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const pending = state.pending;
  if (!pending) return show('phone');
  const code = el.codeInput.value.trim();
  if (!code) {
    state.errors.code = { key: 'error.required.code' };
    return render();
  }
  try {
    const signedIn = await api('POST', '/api/auth/verify-code/', {
      phone_number: pending.phone,
      code,
    });
    writeToken(signedIn.token);
    state.pending = null;
    state.errors.code = null;
    state.stats = null;
    await enter();
  } catch (error) {
    state.errors.code = messageOf(error);
    render();
  }
});

el.changePhone.addEventListener('click', () => {
  state.pending = null;
  show('phone');
});
el.logout.addEventListener('click', () => void signOut());
el.deniedLogout.addEventListener('click', () => void signOut());
el.loadingRetry.addEventListener('click', () => void enter());

el.searchForm.addEventListener('submit', (event) => {
  event.preventDefault();
  state.users.q = el.searchInput.value.trim();
  state.users.sort = el.sortSelect.value;
  state.users.next = null;
  void searchUsers(state.epoch, false);
});
el.usersMore.addEventListener('click', () => void searchUsers(state.epoch, true));

el.blockButton.addEventListener('click', () => void changeUser('block'));
el.unblockButton.addEventListener('click', () => void changeUser('unblock'));
el.revokeButton.addEventListener('click', () => void changeUser('revoke-tokens'));
el.referralsMore.addEventListener('click', () => void moreReferrals());
el.userAuditMore.addEventListener('click', () => void moreUserAudit());

el.auditForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const userId = el.auditUser.value.trim();
  if (userId && !/^\d{1,15}$/.test(userId)) {
    state.errors.audit = { key: 'audit.badUser' };
    return render();
  }
  state.audit.type = el.auditType.value;
  state.audit.userId = userId;
  state.audit.next = null;
  void loadAudit(state.epoch, false);
});
el.auditMore.addEventListener('click', () => void loadAudit(state.epoch, true));

for (const button of document.querySelectorAll('.lang-btn')) {
  button.addEventListener('click', () => {
    const lang = button.getAttribute('data-lang');
    if (lang !== 'en' && lang !== 'ru') return;
    state.lang = lang;
    saveLanguage(lang);
    render();
  });
}

window.addEventListener('hashchange', () => {
  if (state.token && state.view !== 'phone' && state.view !== 'code' && state.view !== 'denied') {
    el.auditType.replaceChildren(
      ...['', ...AUDIT_TYPES].map((type) => {
        const option = document.createElement('option');
        option.value = type;
        return option;
      }),
    );
    route();
  }
});

window.addEventListener('storage', (event) => {
  // Signed out (or in as someone else) on the main page in another tab.
  if (event.key === TOKEN_KEY && event.newValue !== state.token) {
    state.token = event.newValue;
    state.stats = null;
    if (state.token) void enter();
    else signOutLocally(null);
  }
});

el.auditType.replaceChildren(
  ...['', ...AUDIT_TYPES].map((type) => {
    const option = document.createElement('option');
    option.value = type;
    return option;
  }),
);
route();
