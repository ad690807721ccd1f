import type { TestContext } from 'node:test'
import { chromium, type Browser, type Page } from 'playwright-core'
import { eventually } from './eventually.ts'

// A real headless browser for end-to-end tests of the dashboard: Debian's chromium (scripts/services.sh installs
// it) driven by playwright-core.

export const CHROMIUM = '/usr/bin/chromium'

/** A fresh headless chromium, closed after the test. */
export async function openBrowser (t: TestContext): Promise<Browser> {
  // --no-sandbox: the test machines run as root, where chromium refuses its sandbox.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  t.after(() => browser.close())
  return browser
}

/** Waits until the element's text satisfies `check`; fails with the last text seen. */
export async function waitForText (page: Page, selector: string, check: (text: string) => boolean, ms = 20_000): Promise<string> {
  let last = ''
  const ok = await eventually(async () => {
    last = (await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => null)) ?? ''
    return check(last)
  }, ms, 200)
  if (!ok) throw new Error(`${selector}: text ${JSON.stringify(last)} never matched`)
  return last
}
