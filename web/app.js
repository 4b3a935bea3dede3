import { loadProvider, renderWidget } from './captcha.js';
import {
  dictionaries,
  initialLanguage,
  LANGUAGE_STORAGE_KEY,
  languages,
  saveLanguage,
  translate,
} from './i18n.js';
import { formatPhone } from './phone.js';

/*
 * The whole UI in one module: a small state object, a render() that writes it into the static
 * markup of index.html, and event handlers that call the JSON API. No framework, no build step.
 *
 * The API token is kept in localStorage and sent as `Authorization: Token <key>`, exactly as any
 * other API client does (see the README for why this and not a cookie). The page has a strict
 * Content-Security-Policy with no inline scripts, which is what protects the stored token.
 */

const TOKEN_KEY = 'referral.token';
const PENDING_SIGN_IN_KEY = 'referral.pendingSignIn';
const PENDING_INVITE_KEY = 'referral.pendingInvite';
const REFERRALS_PAGE_SIZE = 10;
/** Used when the API does not say how long the resend cooldown is. */
const DEFAULT_RESEND_SECONDS = 60;
const INVITE_CODE_PATTERN = /^[A-Z0-9]{6}$/;

/**
 * A message to show, kept as a dictionary key (not as text) so that it is re-translated when the
 * language changes. `seconds` fills the `{time}` placeholder. `text` is a server message that has
 * no translation.
 * @typedef {{ key: string, params?: Record<string, string | number>, seconds?: number }
 *   | { text: string }} Message
 * @typedef {{ phone: string, devCode: string | null, resendAt: number }} PendingSignIn
 * @typedef {{ phone_number: string, activated_at: string }} Referral
 * @typedef {{ provider: 'turnstile' | 'hcaptcha', siteKey: string }} CaptchaSettings
 * @typedef {import('./captcha.js').Widget} Widget
 * @typedef {{ id: unknown, phone_number: string, invite_code: string,
 *   activated_invite_code: string | null, referrals_count?: number }} Profile
 */

const local = storageArea(() => window.localStorage);
const session = storageArea(() => window.sessionStorage);

const state = {
  /** @type {'en' | 'ru'} */
  lang: initialLanguage(),
  /** @type {'loading' | 'phone' | 'code' | 'profile'} */
  view: 'loading',
  /** @type {string | null} */
  token: local.get(TOKEN_KEY),
  /** Incremented on every sign-in and sign-out, so that late answers for an old session are dropped. */
  epoch: 0,
  /** @type {PendingSignIn | null} */
  pending: parsePendingSignIn(session.get(PENDING_SIGN_IN_KEY)),
  /** @type {Profile | null} */
  profile: null,
  /** @type {Referral[]} */
  referrals: [],
  /** @type {number | null} */
  referralsCount: null,
  /** @type {string | null} */
  nextCursor: null,
  referralsLoading: false,
  /** An invite code from a `/?invite=CODE` link, remembered through sign-in. @type {string | null} */
  pendingInvite: session.get(PENDING_INVITE_KEY),
  /** @type {Record<'loading' | 'phone' | 'code' | 'activate' | 'referrals', Message | null>} */
  errors: { loading: null, phone: null, code: null, activate: null, referrals: null },
  /** @type {Message | null} */
  status: null,
  /**
   * The CAPTCHA request-code needs: undefined until the server has said, null when none.
   * @type {CaptchaSettings | null | undefined}
   */
  captcha: undefined,
  /** True once the provider's script failed to load: say so instead of "complete the CAPTCHA". */
  captchaFailed: false,
};

/** The rendered widgets: one on the phone step, one for "Send a new code". */
const captchaWidgets = {
  /** @type {Widget | null} */
  phone: null,
  /** @type {Widget | null} */
  resend: null,
};

/** @param {string} id */
function $(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element;
}

const el = {
  status: $('status'),
  views: {
    loading: $('view-loading'),
    phone: $('view-phone'),
    code: $('view-code'),
    profile: $('view-profile'),
  },
  loadingText: $('loading-text'),
  loadingError: $('loading-error'),
  loadingRetry: /** @type {HTMLButtonElement} */ ($('loading-retry')),
  phoneHeading: $('phone-heading'),
  phoneInvited: $('phone-invited'),
  phoneForm: /** @type {HTMLFormElement} */ ($('phone-form')),
  phoneInput: /** @type {HTMLInputElement} */ ($('phone-input')),
  phoneError: $('phone-error'),
  phoneCaptcha: $('phone-captcha'),
  codeLead: $('code-lead'),
  devCode: $('dev-code'),
  devCodeValue: $('dev-code-value'),
  codeForm: /** @type {HTMLFormElement} */ ($('code-form')),
  codeInput: /** @type {HTMLInputElement} */ ($('code-input')),
  codeError: $('code-error'),
  resendCaptcha: $('resend-captcha'),
  resendTimer: $('resend-timer'),
  resendButton: /** @type {HTMLButtonElement} */ ($('resend-btn')),
  changePhoneButton: $('change-phone-btn'),
  profileHeading: $('profile-heading'),
  profilePhone: $('profile-phone'),
  logoutButton: /** @type {HTMLButtonElement} */ ($('logout-btn')),
  inviteCode: $('invite-code'),
  copyCodeButton: /** @type {HTMLButtonElement} */ ($('copy-code-btn')),
  shareLink: /** @type {HTMLTextAreaElement} */ ($('share-link')),
  copyLinkButton: /** @type {HTMLButtonElement} */ ($('copy-link-btn')),
  shareButton: /** @type {HTMLButtonElement} */ ($('share-btn')),
  activateHeading: $('activate-heading'),
  activateFormWrap: $('activate-form-wrap'),
  activateFromLink: $('activate-from-link'),
  activateForm: /** @type {HTMLFormElement} */ ($('activate-form')),
  inviteInput: /** @type {HTMLInputElement} */ ($('invite-input')),
  activateError: $('activate-error'),
  activatedWrap: $('activated-wrap'),
  activatedCode: $('activated-code'),
  referralsCount: $('referrals-count'),
  referralsEmpty: $('referrals-empty'),
  referralsList: $('referrals-list'),
  referralsError: $('referrals-error'),
  referralsShown: $('referrals-shown'),
  loadMoreButton: /** @type {HTMLButtonElement} */ ($('load-more-btn')),
};

/**
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
function t(key, params) {
  return translate(state.lang, key, params);
}

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  /**
   * @param {number} status 0 when the server could not be reached
   * @param {Record<string, unknown> | null} body
   * @param {number | null} retryAfterSeconds
   */
  constructor(status, body, retryAfterSeconds) {
    super(typeof body?.error === 'string' ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
    this.retryAfterSeconds = retryAfterSeconds;
    /** True when the error has already been dealt with (a 401 returned the user to sign-in). */
    this.handled = false;
  }
}

/**
 * @param {'GET' | 'POST'} method
 * @param {string} path
 * @param {Record<string, unknown>} [body]
 * @param {{ signOutOn401?: boolean }} [options]
 * @returns {Promise<any>}
 */
async function api(method, path, body, { signOutOn401 = true } = {}) {
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
    throw new ApiError(0, null, null);
  }
  const data = await response.json().catch(() => null);
  if (response.ok) return data;

  const error = new ApiError(response.status, data, retryAfterOf(response, data));
  if (response.status === 401 && signOutOn401 && sentToken && sentToken === state.token) {
    // The token expired or was revoked (for instance by "sign out everywhere"): start over.
    signOutLocally({ key: 'status.sessionEnded' });
    error.handled = true;
  }
  throw error;
}

/**
 * @param {Response} response
 * @param {any} data
 * @returns {number | null}
 */
function retryAfterOf(response, data) {
  if (typeof data?.retry_after === 'number' && Number.isFinite(data.retry_after)) {
    return Math.max(0, data.retry_after);
  }
  const header = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  return Number.isFinite(header) ? Math.max(0, header) : null;
}

/**
 * Turns a failed request into a message in the user's language. Known error codes have their
 * own text; unknown ones fall back to the server's message.
 * @param {unknown} error
 * @returns {Message}
 */
function describeError(error) {
  if (!(error instanceof ApiError)) return { key: 'error.unknown' };
  if (error.status === 0) return { key: 'error.network' };
  const body = /** @type {Record<string, any>} */ (error.body);
  const code = typeof body.code === 'string' ? body.code : '';
  const retry = error.retryAfterSeconds;

  if (code === 'invalid_code') {
    return typeof body.attempts_left === 'number'
      ? { key: 'error.invalid_code', params: { attempts: body.attempts_left } }
      : { key: 'error.invalid_code_plain' };
  }
  if (code === 'rate_limited' || (!code && error.status === 429)) {
    return retry === null
      ? { key: 'error.rate_limited_plain' }
      : { key: 'error.rate_limited', seconds: retry };
  }
  if (code === 'validation_error') return describeFields(body.fields);
  if (code && `error.${code}` in dictionaries.en) return { key: `error.${code}` };
  if (error.status >= 500) return { key: 'error.service_unavailable' };
  if (typeof body.error === 'string' && body.error) return { text: body.error };
  return { key: 'error.unknown' };
}

/**
 * @param {unknown} fields
 * @returns {Message}
 */
function describeFields(fields) {
  const names = fields && typeof fields === 'object' ? Object.keys(fields) : [];
  if (names.includes('phone_number')) return { key: 'error.invalid_phone' };
  if (names.includes('code')) return { key: 'error.format.code' };
  if (names.includes('invite_code')) return { key: 'error.format.invite' };
  return { key: 'error.validation_error' };
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** @param {Message | null} message */
function messageText(message) {
  if (!message) return '';
  if ('text' in message) return message.text;
  const params = { ...message.params };
  if (message.seconds !== undefined) params.time = formatDuration(message.seconds);
  return t(message.key, params);
}

/** @param {number} totalSeconds */
function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.ceil(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, '0');
  return hours > 0
    ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}`
    : `${minutes}:${seconds}`;
}

/** @param {string} iso */
function formatDate(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(state.lang, { dateStyle: 'medium', timeStyle: 'short' }).format(
    date,
  );
}

function shareUrl() {
  const code = state.profile?.invite_code ?? '';
  return `${location.origin}/?invite=${encodeURIComponent(code)}`;
}

/**
 * Writes an error into its live region and marks the input it describes.
 * @param {HTMLElement} target
 * @param {Message | null} message
 * @param {HTMLInputElement} [input]
 */
function renderError(target, message, input) {
  const text = messageText(message);
  if (target.textContent !== text) target.textContent = text;
  if (input) {
    if (text) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

function render() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll('[data-i18n]')) {
    renderLabel(/** @type {HTMLElement} */ (node));
  }
  for (const button of document.querySelectorAll('[data-lang]')) {
    const pressed = /** @type {HTMLElement} */ (button).dataset.lang === state.lang;
    button.setAttribute('aria-pressed', String(pressed));
  }
  const loadFailed = Boolean(state.errors.loading);
  let titleKey = `title.${state.view}`;
  if (state.view === 'loading') titleKey = loadFailed ? 'title.loadFailed' : 'app.loading';
  document.title = `${t(titleKey)} · ${t('app.name')}`;

  for (const [name, view] of Object.entries(el.views)) view.hidden = name !== state.view;
  const status = messageText(state.status);
  if (el.status.textContent !== status) el.status.textContent = status;

  // Once loading has failed, "Loading…" would contradict the error below it.
  el.loadingText.hidden = loadFailed;
  el.views.loading.setAttribute('aria-labelledby', loadFailed ? 'loading-error' : 'loading-text');
  renderError(el.loadingError, state.errors.loading);
  el.loadingRetry.hidden = !loadFailed;
  renderPhoneView();
  renderCodeView();
  renderProfileView();
}

function renderPhoneView() {
  el.phoneInvited.hidden = !state.pendingInvite;
  el.phoneInvited.textContent = state.pendingInvite
    ? t('phone.invited', { code: state.pendingInvite })
    : '';
  renderError(el.phoneError, state.errors.phone, el.phoneInput);
  el.phoneCaptcha.hidden = !captchaWidgets.phone;
}

function renderCodeView() {
  const pending = state.pending;
  el.codeLead.textContent = pending ? t('code.lead', { phone: formatPhone(pending.phone) }) : '';
  el.devCode.hidden = !pending?.devCode;
  el.devCodeValue.textContent = pending?.devCode ?? '';
  renderError(el.codeError, state.errors.code, el.codeInput);
  renderResendTimer();
}

function renderResendTimer() {
  const secondsLeft = state.pending ? Math.ceil((state.pending.resendAt - Date.now()) / 1000) : 0;
  const waiting = secondsLeft > 0;
  const text = waiting ? t('code.resendIn', { time: formatDuration(secondsLeft) }) : '';
  if (el.resendTimer.textContent !== text) el.resendTimer.textContent = text;
  el.resendCaptcha.hidden = waiting || !captchaWidgets.resend;
  if (el.resendButton.hidden !== waiting) {
    const hadFocus = document.activeElement === el.resendButton;
    el.resendButton.hidden = waiting;
    if (hadFocus) el.codeInput.focus();
  }
}

function renderProfileView() {
  const profile = state.profile;
  if (!profile) return;
  el.profilePhone.textContent = t('profile.signedInAs', {
    phone: formatPhone(profile.phone_number),
  });
  el.inviteCode.textContent = profile.invite_code;
  el.shareLink.value = shareUrl();
  el.shareButton.hidden = typeof navigator.share !== 'function';

  const activated = profile.activated_invite_code;
  el.activateHeading.textContent = t(activated ? 'activate.doneHeading' : 'activate.heading');
  el.activateFormWrap.hidden = Boolean(activated);
  el.activatedWrap.hidden = !activated;
  el.activatedCode.textContent = activated ?? '';
  const fromLink = !activated && state.pendingInvite;
  el.activateFromLink.hidden = !fromLink;
  el.activateFromLink.textContent = fromLink
    ? t('activate.fromLink', { code: state.pendingInvite ?? '' })
    : '';
  renderError(el.activateError, state.errors.activate, el.inviteInput);
  renderReferrals();
}

function renderReferrals() {
  const count = state.referralsCount;
  el.referralsCount.hidden = count === null;
  el.referralsCount.textContent = count === null ? '' : t('referrals.count', { count });
  el.referralsEmpty.hidden = count !== 0;
  el.referralsEmpty.textContent = t('referrals.empty');

  // Rebuilt on every render (it is short); keep keyboard focus on the same item.
  const items = [...el.referralsList.children];
  const focusedIndex = items.indexOf(/** @type {Element} */ (document.activeElement));
  el.referralsList.replaceChildren(
    ...state.referrals.map((referral) => {
      const item = document.createElement('li');
      item.tabIndex = -1;
      const phone = document.createElement('span');
      phone.className = 'phone';
      phone.textContent = formatPhone(referral.phone_number);
      const time = document.createElement('time');
      time.dateTime = referral.activated_at;
      time.textContent = formatDate(referral.activated_at);
      item.append(phone, time);
      return item;
    }),
  );
  if (focusedIndex >= 0) focusReferral(focusedIndex);

  let shown = '';
  if (state.referralsLoading) shown = t('referrals.loading');
  else if (count) shown = t('referrals.shown', { shown: state.referrals.length, count });
  el.referralsShown.textContent = shown;
  el.loadMoreButton.hidden = !state.nextCursor;
  setBusy(el.loadMoreButton, state.referralsLoading);
  renderError(el.referralsError, state.errors.referrals);
}

/** @param {number} index */
function focusReferral(index) {
  const item = /** @type {HTMLElement | undefined} */ (el.referralsList.children[index]);
  item?.focus();
}

/**
 * @param {'loading' | 'phone' | 'code' | 'profile'} view
 * @param {HTMLElement} [focusTarget] moved to after rendering, so screen readers follow the change
 */
function showView(view, focusTarget) {
  state.view = view;
  render();
  focusTarget?.focus();
}

/**
 * Writes an element's text from its `data-i18n` key, or, on a busy button, from its
 * `data-i18n-busy` key ("Sending…").
 * @param {HTMLElement} node
 */
function renderLabel(node) {
  const busyKey = node.getAttribute('aria-disabled') === 'true' ? node.dataset.i18nBusy : undefined;
  const text = t(busyKey ?? node.dataset.i18n ?? '');
  if (node.textContent !== text) node.textContent = text;
}

/**
 * Marks a button busy while its action runs: it is announced as unavailable, says what is
 * happening (with a spinner, see styles.css), and a second click is ignored. It stays focusable:
 * a `disabled` button would drop keyboard focus to the page.
 * @param {HTMLElement} button
 * @param {boolean} busy
 */
function setBusy(button, busy) {
  if (busy) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
  if (button.dataset.i18n) renderLabel(button);
}

/**
 * @param {HTMLElement} button
 * @param {() => Promise<void>} action
 */
async function whileBusy(button, action) {
  if (button.getAttribute('aria-disabled') === 'true') return;
  setBusy(button, true);
  try {
    await action();
  } finally {
    setBusy(button, false);
  }
}

/** @param {HTMLFormElement} form */
function submitButtonOf(form) {
  return /** @type {HTMLElement} */ (form.querySelector('[type="submit"]'));
}

// ---------------------------------------------------------------------------------------------
// Sign-in

/** @param {SubmitEvent} event */
async function onPhoneSubmit(event) {
  event.preventDefault();
  state.status = null;
  const phone = el.phoneInput.value.trim();
  if (!phone) {
    state.errors.phone = { key: 'error.required.phone' };
    render();
    el.phoneInput.focus();
    return;
  }
  const captcha = captchaBody('phone');
  if (!captcha) {
    state.errors.phone = captchaMissing();
    render();
    el.phoneInput.focus();
    return;
  }
  await whileBusy(submitButtonOf(el.phoneForm), async () => {
    try {
      const data = await api('POST', '/api/auth/request-code/', {
        phone_number: phone,
        ...captcha,
      });
      state.errors.phone = null;
      startCodeStep(phone, data);
    } catch (error) {
      state.errors.phone = describeError(error);
      captchaRefused(error);
      render();
      el.phoneInput.focus();
    } finally {
      if (captcha.captcha_token) captchaWidgets.phone?.reset();
    }
  });
}

/**
 * @param {string} phone
 * @param {any} data the request-code answer
 */
function startCodeStep(phone, data) {
  state.pending = {
    phone,
    devCode: typeof data?.dev_code === 'string' ? data.dev_code : null,
    resendAt: Date.now() + resendCooldownSeconds(data) * 1000,
  };
  session.set(PENDING_SIGN_IN_KEY, JSON.stringify(state.pending));
  state.errors.code = null;
  el.codeInput.value = '';
  showView('code', el.codeInput);
}

/** @param {any} data */
function resendCooldownSeconds(data) {
  const seconds = data?.retry_after ?? data?.resend_after;
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0
    ? seconds
    : DEFAULT_RESEND_SECONDS;
}

/** @param {SubmitEvent} event */
async function onCodeSubmit(event) {
  event.preventDefault();
  state.status = null;
  const pending = state.pending;
  if (!pending) return showView('phone', el.phoneInput);
  const code = el.codeInput.value.replace(/\s+/g, '');
  if (!code || !/^\d+$/.test(code)) {
    state.errors.code = { key: code ? 'error.format.code' : 'error.required.code' };
    render();
    el.codeInput.focus();
    return;
  }
  await whileBusy(submitButtonOf(el.codeForm), async () => {
    try {
      const data = await api('POST', '/api/auth/verify-code/', {
        phone_number: pending.phone,
        code,
      });
      await signedIn(data);
    } catch (error) {
      state.errors.code = describeError(error);
      // After these the code can never succeed, so keeping it in the field would only mislead.
      const code = error instanceof ApiError ? error.body.code : null;
      if (code === 'code_expired' || code === 'too_many_attempts') el.codeInput.value = '';
      render();
      el.codeInput.focus();
      el.codeInput.select();
    }
  });
}

async function onResend() {
  const pending = state.pending;
  if (!pending) return;
  state.status = null;
  const captcha = captchaBody('resend');
  if (!captcha) {
    state.errors.code = captchaMissing();
    render();
    el.resendButton.focus();
    return;
  }
  await whileBusy(el.resendButton, async () => {
    try {
      const data = await api('POST', '/api/auth/request-code/', {
        phone_number: pending.phone,
        ...captcha,
      });
      startCodeStep(pending.phone, data);
      state.status = { key: 'code.sent', params: { phone: formatPhone(pending.phone) } };
      render();
    } catch (error) {
      if (error instanceof ApiError && error.retryAfterSeconds !== null && state.pending) {
        state.pending.resendAt = Date.now() + error.retryAfterSeconds * 1000;
        session.set(PENDING_SIGN_IN_KEY, JSON.stringify(state.pending));
      }
      state.errors.code = describeError(error);
      captchaRefused(error);
      render();
      el.codeInput.focus();
    } finally {
      if (captcha.captcha_token) captchaWidgets.resend?.reset();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// CAPTCHA

/**
 * Asks the server which CAPTCHA request-code needs and renders its widgets. Without one the
 * page loads nothing from another host. Failures are kept quiet here: request-code answers
 * `captcha_required` if it needed a token, and that answer tries again.
 */
async function loadCaptcha() {
  if (captchaWidgets.phone) return;
  let settings;
  try {
    settings = await api('GET', '/api/auth/captcha/', undefined, { signOutOn401: false });
  } catch {
    return;
  }
  if (settings?.provider !== 'turnstile' && settings?.provider !== 'hcaptcha') {
    state.captcha = null;
    return;
  }
  const captcha = { provider: settings.provider, siteKey: String(settings.site_key ?? '') };
  state.captcha = captcha;
  try {
    const providerApi = await loadProvider(captcha.provider);
    state.captchaFailed = false;
    for (const [name, container] of /** @type {const} */ ([
      ['phone', el.phoneCaptcha],
      ['resend', el.resendCaptcha],
    ])) {
      captchaWidgets[name] ??= renderWidget(providerApi, {
        ...captcha,
        lang: state.lang,
        container,
      });
    }
  } catch {
    state.captchaFailed = true;
  }
  render();
}

/**
 * The `captcha_token` part of a request-code body: empty without a CAPTCHA, null when one is
 * needed and not solved yet.
 * @param {keyof typeof captchaWidgets} where
 * @returns {{ captcha_token?: string } | null}
 */
function captchaBody(where) {
  if (!state.captcha) return {};
  const token = captchaWidgets[where]?.token();
  return token ? { captcha_token: token } : null;
}

/** @returns {Message} */
function captchaMissing() {
  if (state.captchaFailed || !captchaWidgets.phone) {
    loadCaptcha();
    return { key: 'error.captcha_unloaded' };
  }
  return { key: 'error.captcha_required' };
}

/**
 * After a refused token the widget has been reset (see the callers); a server that needs a
 * CAPTCHA the page did not know of (its settings did not load) gets its widget now.
 * @param {unknown} error
 */
function captchaRefused(error) {
  const code = error instanceof ApiError ? error.body.code : null;
  if ((code === 'captcha_required' || code === 'captcha_invalid') && !captchaWidgets.phone) {
    loadCaptcha();
  }
}

function onChangePhone() {
  if (state.pending && !el.phoneInput.value) el.phoneInput.value = state.pending.phone;
  state.pending = null;
  session.remove(PENDING_SIGN_IN_KEY);
  state.errors.code = null;
  state.status = null;
  showView('phone', el.phoneInput);
}

/** @param {any} data the verify-code answer */
async function signedIn(data) {
  state.epoch += 1;
  state.token = data.token;
  local.set(TOKEN_KEY, data.token);
  state.pending = null;
  session.remove(PENDING_SIGN_IN_KEY);
  state.errors.code = null;
  el.codeInput.value = '';
  state.status = data.is_new_user ? { key: 'profile.welcome' } : null;
  state.profile = { ...data.user };
  await openProfile();
}

// ---------------------------------------------------------------------------------------------
// Profile

/** Loads the profile and the first page of referrals and shows them. */
async function openProfile() {
  const epoch = state.epoch;
  state.errors.loading = null;
  try {
    const profile = await api('GET', '/api/profile/');
    if (epoch !== state.epoch) return;
    setProfile(profile);
  } catch (error) {
    if (epoch !== state.epoch || (error instanceof ApiError && error.handled)) return;
    state.errors.loading = describeError(error);
    showView('loading', el.loadingRetry);
    return;
  }
  state.referrals = [];
  state.referralsCount = null;
  state.nextCursor = null;
  showView('profile', el.profileHeading);
  await loadReferrals();
}

/** @param {Profile} profile */
function setProfile(profile) {
  state.profile = profile;
  if (profile.activated_invite_code) {
    forgetPendingInvite();
  } else if (state.pendingInvite && !el.inviteInput.value) {
    el.inviteInput.value = state.pendingInvite;
  }
}

function forgetPendingInvite() {
  state.pendingInvite = null;
  session.remove(PENDING_INVITE_KEY);
}

async function loadReferrals() {
  if (state.referralsLoading) return;
  const epoch = state.epoch;
  const firstNew = state.referrals.length;
  const loadingMore = state.nextCursor !== null;
  const query = new URLSearchParams({ limit: String(REFERRALS_PAGE_SIZE) });
  if (state.nextCursor) query.set('cursor', state.nextCursor);
  state.referralsLoading = true;
  state.errors.referrals = null;
  render();
  try {
    const page = await api('GET', `/api/profile/referrals/?${query}`);
    if (epoch !== state.epoch) return;
    state.referrals = [...state.referrals, ...(page.results ?? [])];
    state.referralsCount = typeof page.count === 'number' ? page.count : state.referrals.length;
    state.nextCursor = page.next_cursor ?? null;
  } catch (error) {
    if (epoch !== state.epoch || (error instanceof ApiError && error.handled)) return;
    state.errors.referrals = describeError(error);
  } finally {
    if (epoch === state.epoch) {
      state.referralsLoading = false;
      render();
    }
  }
  // Move focus to the first newly shown referral so keyboard users continue where they were.
  if (loadingMore && state.referrals.length > firstNew) focusReferral(firstNew);
}

/** @param {SubmitEvent} event */
async function onActivateSubmit(event) {
  event.preventDefault();
  state.status = null;
  const code = el.inviteInput.value.trim().toUpperCase();
  if (!INVITE_CODE_PATTERN.test(code)) {
    state.errors.activate = { key: 'error.format.invite' };
    render();
    el.inviteInput.focus();
    return;
  }
  await whileBusy(submitButtonOf(el.activateForm), async () => {
    const epoch = state.epoch;
    try {
      const data = await api('POST', '/api/profile/', { invite_code: code });
      if (epoch !== state.epoch) return;
      state.errors.activate = null;
      forgetPendingInvite();
      setProfile(data.profile ?? { ...state.profile, activated_invite_code: code });
      state.status = { key: 'activate.success', params: { code } };
      render();
      el.activateHeading.focus();
    } catch (error) {
      if (epoch !== state.epoch || (error instanceof ApiError && error.handled)) return;
      state.errors.activate = describeError(error);
      render();
      el.inviteInput.focus();
    }
  });
}

/**
 * @param {string} text
 * @param {HTMLElement} selectable selected instead when the clipboard is unavailable, so the
 *   user can copy by hand
 * @param {string} doneKey
 */
async function copy(text, selectable, doneKey) {
  try {
    await navigator.clipboard.writeText(text);
    state.status = { key: doneKey };
  } catch {
    if (selectable instanceof HTMLTextAreaElement) {
      selectable.focus();
      selectable.select();
    } else {
      window.getSelection()?.selectAllChildren(selectable);
    }
    state.status = { key: 'invite.copyFailed' };
  }
  render();
}

async function onShare() {
  const code = state.profile?.invite_code ?? '';
  try {
    await navigator.share({
      title: t('invite.shareTitle'),
      text: t('invite.shareText', { code }),
      url: shareUrl(),
    });
  } catch {
    // Cancelled by the user, or not allowed: nothing to report.
  }
}

async function onLogout() {
  await whileBusy(el.logoutButton, async () => {
    try {
      await api('POST', '/api/auth/logout/', undefined, { signOutOn401: false });
    } catch {
      // Forgetting the token here is what matters to the user; an already-dead token is fine.
    }
    signOutLocally({ key: 'status.signedOut' });
  });
}

/**
 * Forgets the token and everything shown for it, and returns to the phone step.
 * @param {Message} status
 */
function signOutLocally(status) {
  state.epoch += 1;
  state.token = null;
  local.remove(TOKEN_KEY);
  state.profile = null;
  state.referrals = [];
  state.referralsCount = null;
  state.nextCursor = null;
  state.referralsLoading = false;
  state.pending = null;
  session.remove(PENDING_SIGN_IN_KEY);
  for (const key of Object.keys(state.errors)) {
    state.errors[/** @type {keyof typeof state.errors} */ (key)] = null;
  }
  for (const input of [el.phoneInput, el.codeInput, el.inviteInput]) input.value = '';
  state.status = status;
  showView('phone', el.phoneHeading);
}

// ---------------------------------------------------------------------------------------------
// Start-up

/** Remembers `?invite=CODE` and removes it from the address bar. */
function captureInviteFromUrl() {
  const url = new URL(location.href);
  const invite = url.searchParams.get('invite')?.trim().toUpperCase();
  if (invite === undefined) return;
  if (invite && invite.length <= 32) {
    state.pendingInvite = invite;
    session.set(PENDING_INVITE_KEY, invite);
  }
  url.searchParams.delete('invite');
  history.replaceState(history.state, '', `${url.pathname}${url.search}${url.hash}`);
}

/** @param {string} lang */
function setLanguage(lang) {
  if (lang !== 'en' && lang !== 'ru') return;
  state.lang = lang;
  saveLanguage(lang);
  render();
}

function bindEvents() {
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.addEventListener('click', () => {
      setLanguage(/** @type {HTMLElement} */ (button).dataset.lang ?? '');
    });
  }
  el.phoneForm.addEventListener('submit', onPhoneSubmit);
  el.codeForm.addEventListener('submit', onCodeSubmit);
  el.resendButton.addEventListener('click', onResend);
  el.changePhoneButton.addEventListener('click', onChangePhone);
  el.logoutButton.addEventListener('click', onLogout);
  el.copyCodeButton.addEventListener('click', () =>
    copy(state.profile?.invite_code ?? '', el.inviteCode, 'invite.codeCopied'),
  );
  el.copyLinkButton.addEventListener('click', () =>
    copy(shareUrl(), el.shareLink, 'invite.linkCopied'),
  );
  el.shareButton.addEventListener('click', onShare);
  el.activateForm.addEventListener('submit', onActivateSubmit);
  el.loadMoreButton.addEventListener('click', () => {
    if (state.nextCursor) loadReferrals();
  });
  el.loadingRetry.addEventListener('click', () => openProfile());
  // Editing a field clears its error, so a stale message does not sit next to new input.
  for (const [input, key] of /** @type {const} */ ([
    [el.phoneInput, 'phone'],
    [el.codeInput, 'code'],
    [el.inviteInput, 'activate'],
  ])) {
    input.addEventListener('input', () => {
      if (!state.errors[key]) return;
      state.errors[key] = null;
      render();
    });
  }
  // The resend countdown; cheap enough to tick always.
  setInterval(() => {
    if (state.view === 'code') renderResendTimer();
  }, 1000);
  // Another tab signed in or out: follow it.
  window.addEventListener('storage', (event) => {
    if (event.key === TOKEN_KEY && event.newValue !== state.token) location.reload();
    if (event.key === LANGUAGE_STORAGE_KEY && event.newValue) setLanguage(event.newValue);
  });
}

async function start() {
  if (!languages.includes(state.lang)) state.lang = 'en';
  captureInviteFromUrl();
  bindEvents();
  loadCaptcha();
  if (state.token) {
    showView('loading');
    await openProfile();
  } else if (state.pending) {
    showView('code');
  } else {
    showView('phone');
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * Web Storage that never throws: it can be disabled or full, and the UI must still work for the
 * lifetime of the page.
 * @param {() => Storage} getArea
 */
function storageArea(getArea) {
  return {
    /** @param {string} key */
    get(key) {
      try {
        return getArea().getItem(key);
      } catch {
        return null;
      }
    },
    /** @param {string} key @param {string} value */
    set(key, value) {
      try {
        getArea().setItem(key, value);
      } catch {
        // Not persisted; still works until the page is closed.
      }
    },
    /** @param {string} key */
    remove(key) {
      try {
        getArea().removeItem(key);
      } catch {
        // Nothing to remove from an unavailable store.
      }
    },
  };
}

/**
 * @param {string | null} text
 * @returns {PendingSignIn | null}
 */
function parsePendingSignIn(text) {
  if (!text) return null;
  try {
    const value = JSON.parse(text);
    const valid =
      typeof value?.phone === 'string' &&
      typeof value.resendAt === 'number' &&
      (value.devCode === null || typeof value.devCode === 'string');
    return valid ? value : null;
  } catch {
    return null;
  }
}

start();
