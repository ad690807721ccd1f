import { settings } from './settings.ts'

/** The settings table of docs/configuration.md, generated from the settings so the two cannot drift apart. */
export function settingsTable (): string {
  const rows = Object.values(settings).map((s) => `| \`${s.env}\` | ${s.defaultText} | ${s.doc} |`)
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n')
}
