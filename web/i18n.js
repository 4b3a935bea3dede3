import { en } from './i18n/en.js';
import { ru } from './i18n/ru.js';

/** One dictionary per language; all user-visible text comes from here. */
export const dictionaries = { en, ru };
export const languages = /** @type {const} */ (['en', 'ru']);

export const LANGUAGE_STORAGE_KEY = 'referral.lang';

/**
 * The saved choice wins; otherwise the first of the browser's preferred languages that we
 * support; otherwise English.
 * @returns {'en' | 'ru'}
 */
export function initialLanguage() {
  const saved = safeGet(LANGUAGE_STORAGE_KEY);
  if (saved === 'en' || saved === 'ru') return saved;
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of preferred) {
    const base = String(tag || '')
      .toLowerCase()
      .split('-')[0];
    if (base === 'ru' || base === 'en') return base;
  }
  return 'en';
}

/** @param {'en' | 'ru'} lang */
export function saveLanguage(lang) {
  try {
    localStorage.setItem(LANGUAGE_STORAGE_KEY, lang);
  } catch {
    // Storage can be unavailable (private mode, disabled); the choice then lasts for the page.
  }
}

/**
 * Looks a key up and fills `{name}` placeholders. A missing key shows the key itself, so a gap
 * is visible instead of an empty string.
 * @param {'en' | 'ru'} lang
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
export function translate(lang, key, params = {}) {
  const dict = /** @type {Record<string, string>} */ (dictionaries[lang]);
  const template = dict[key] ?? /** @type {Record<string, string>} */ (en)[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) =>
    name in params ? String(params[name]) : match,
  );
}

/** @param {string} key */
function safeGet(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}
