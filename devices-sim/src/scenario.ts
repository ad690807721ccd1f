// Scenario files (JSON or YAML): options in the command line's vocabulary plus a list of actions the
// coordinator runs once the fleet is connected. The format is documented in docs/devices-sim.md.

import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { SimError } from './errors.ts'
import { parseOptionObject, type SimOptions } from './options.ts'

export type Action =
  | { readonly do: 'wait', readonly ms: number }
  | { readonly do: 'wait-connected', readonly timeoutMs: number }
  | { readonly do: 'broadcast', readonly count: number, readonly intervalMs: number, readonly group?: string, readonly qos: 0 | 1, readonly timeoutMs: number }
  | { readonly do: 'push', readonly count: number, readonly intervalMs: number, readonly qos: 0 | 1, readonly timeoutMs: number }
  | { readonly do: 'kill-node', readonly nodeId?: string, readonly pid?: number, readonly command?: string, readonly timeoutMs: number }

export interface Scenario {
  readonly name: string
  readonly description: string
  readonly options: Partial<SimOptions>
  readonly actions: readonly Action[]
}

const FIELDS: Record<Action['do'], Record<string, 'number' | 'string' | 'qos'>> = {
  wait: { ms: 'number' },
  'wait-connected': { timeoutMs: 'number' },
  broadcast: { count: 'number', intervalMs: 'number', group: 'string', qos: 'qos', timeoutMs: 'number' },
  push: { count: 'number', intervalMs: 'number', qos: 'qos', timeoutMs: 'number' },
  'kill-node': { nodeId: 'string', pid: 'number', command: 'string', timeoutMs: 'number' }
}

const DEFAULTS: Record<Action['do'], Record<string, unknown>> = {
  wait: {},
  'wait-connected': { timeoutMs: 60_000 },
  broadcast: { count: 1, intervalMs: 1000, qos: 1, timeoutMs: 15_000 },
  push: { count: 1, intervalMs: 1000, qos: 1, timeoutMs: 60_000 },
  'kill-node': { timeoutMs: 120_000 }
}

function bad (where: string, message: string): SimError {
  return new SimError('SIM_ERR_SCENARIO', `${where}: ${message}`)
}

/** Checks one action and fills its defaults. */
export function parseAction (raw: unknown, where: string): Action {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(where, 'an action is an object such as {"do": "broadcast"}')
  const { do: kind, ...rest } = raw as Record<string, unknown>
  if (typeof kind !== 'string' || !(kind in FIELDS)) throw bad(where, `"do" must be one of ${Object.keys(FIELDS).join(', ')}, got ${JSON.stringify(kind)}`)
  const fields = FIELDS[kind as Action['do']]
  for (const [k, v] of Object.entries(rest)) {
    const type = fields[k]
    if (type === undefined) throw bad(where, `${kind} has no field "${k}" (fields: ${Object.keys(fields).join(', ') || 'none'})`)
    if (type === 'qos' ? v !== 0 && v !== 1 : type === 'number' ? typeof v !== 'number' || !Number.isFinite(v) || v < 0 : typeof v !== 'string' || v === '') {
      throw bad(where, `${kind}.${k} must be ${type === 'qos' ? '0 or 1' : type === 'number' ? 'a number of 0 or more' : 'a non-empty string'}`)
    }
  }
  if (kind === 'wait' && rest.ms === undefined) throw bad(where, 'wait needs "ms"')
  return { do: kind, ...DEFAULTS[kind as Action['do']], ...rest } as Action
}

/** Parses scenario text; `file` names it in errors and picks YAML or JSON by extension. */
export function parseScenario (text: string, file: string): Scenario {
  let raw: unknown
  try {
    raw = ['.yaml', '.yml'].includes(extname(file)) ? parseYaml(text) : JSON.parse(text)
  } catch (err) {
    throw bad(file, `not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(file, 'a scenario is an object with "options" and "actions"')
  const { name, description, options, actions, ...rest } = raw as Record<string, unknown>
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw bad(file, `unknown field(s) ${unknown.join(', ')} (fields: name, description, options, actions)`)
  if (name !== undefined && typeof name !== 'string') throw bad(file, '"name" must be a string')
  if (description !== undefined && typeof description !== 'string') throw bad(file, '"description" must be a string')
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) throw bad(file, '"options" must be an object')
  if (actions !== undefined && !Array.isArray(actions)) throw bad(file, '"actions" must be a list')
  let parsedOptions: Partial<SimOptions>
  try {
    parsedOptions = parseOptionObject((options ?? {}) as Record<string, unknown>)
  } catch (err) {
    throw bad(`${file}: options`, (err as Error).message)
  }
  return {
    name: name ?? file.replace(/^.*\//, '').replace(/\.[^.]+$/, ''),
    description: description ?? '',
    options: parsedOptions,
    actions: ((actions ?? []) as unknown[]).map((a, i) => parseAction(a, `${file}: actions[${i}]`))
  }
}

export async function loadScenario (file: string): Promise<Scenario> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw bad(file, `cannot read: ${(err as Error).message}`)
  }
  return parseScenario(text, file)
}
