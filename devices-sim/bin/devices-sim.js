#!/usr/bin/env node
// The devices-sim command. In a checkout with the dev dependencies it runs the TypeScript source through tsx, so
// it never runs a stale build; in an install without them (no tsx) it runs the compiled devices-sim/dist, which
// `npm run build:sim` writes (npm runs it through `prepack` before packing).
let tsx
try {
  tsx = await import('tsx/esm/api')
} catch {
  tsx = undefined
}
if (tsx === undefined) {
  await import('../dist/cli.js')
} else {
  tsx.register()
  await import('../src/cli.ts')
}
