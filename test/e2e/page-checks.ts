import type { Page } from 'playwright-core';
import { expect } from 'vitest';

/*
 * Checks of what a person sees, shared by the browser tests: text contrast, touch target sizes
 * and sideways scrolling.
 */

export const viewports = {
  phone: { width: 390, height: 844 },
  desktop: { width: 1280, height: 800 },
};

/**
 * WCAG contrast of every visible piece of text against the first opaque background behind it:
 * 4.5:1, or 3:1 for large text. Returns the failures.
 */
export function lowContrastTexts(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    type Rgba = { r: number; g: number; b: number; a: number };
    const parse = (color: string): Rgba | null => {
      const match = /rgba?\(([^)]+)\)/.exec(color);
      if (!match?.[1]) return null;
      const [r = 0, g = 0, b = 0, a = 1] = match[1]
        .split(/[\s,/]+/)
        .filter(Boolean)
        .map(Number);
      return { r, g, b, a };
    };
    const luminance = ({ r, g, b }: Rgba) => {
      const channel = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const background = (element: Element): Rgba => {
      for (let e: Element | null = element; e; e = e.parentElement) {
        const color = parse(getComputedStyle(e).backgroundColor);
        if (color && color.a > 0) return color;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const failures: string[] = [];
    for (const element of document.querySelectorAll('body *')) {
      if (!element.checkVisibility()) continue;
      const ownText = [...element.childNodes].some(
        (node) => node.nodeType === Node.TEXT_NODE && node.textContent?.trim(),
      );
      if (!ownText && !(element instanceof HTMLInputElement && element.value)) continue;
      const style = getComputedStyle(element);
      const foreground = parse(style.color);
      if (!foreground) continue;
      const [light, dark] = [luminance(foreground), luminance(background(element))].sort(
        (x, y) => y - x,
      ) as [number, number];
      const ratio = (light + 0.05) / (dark + 0.05);
      const size = Number.parseFloat(style.fontSize);
      const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
      if (ratio < (large ? 3 : 4.5)) {
        const text = (element.textContent ?? '').trim().slice(0, 40);
        failures.push(
          `${element.tagName.toLowerCase()}#${element.id} "${text}": ${ratio.toFixed(2)}`,
        );
      }
    }
    return failures;
  });
}

/** Controls smaller than 44 px, and whether the page scrolls sideways, at the current width. */
export function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth) {
      problems.push(`scrolls sideways: ${root.scrollWidth} > ${root.clientWidth}`);
    }
    for (const control of document.querySelectorAll('button, input, a')) {
      if (!control.checkVisibility() || control.classList.contains('skip-link')) continue;
      const box = control.getBoundingClientRect();
      if (box.height < 44) problems.push(`${control.id || control.textContent}: ${box.height}px`);
    }
    return problems;
  });
}

export async function checkAccessibility(page: Page): Promise<void> {
  expect(await lowContrastTexts(page)).toEqual([]);
  const original = page.viewportSize();
  await page.setViewportSize(viewports.phone);
  expect(await layoutProblems(page)).toEqual([]);
  if (original) await page.setViewportSize(original);
}
