#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (a dependency of the repository), so devices-sim needs no build step:
// `npx devices-sim --help` works on a fresh clone after `npm ci`.
import { register } from 'tsx/esm/api'

register()
await import('../src/cli.ts')
