import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'

// The admin dashboard's static files (src/dashboard/: one page, one script, one style sheet; no build step, no
// CDN). They are public: the page holds no data and asks for the admin key, and every call it makes to the
// admin API carries that key.

const ASSETS = [
  { path: '/dashboard', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/dashboard/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { path: '/dashboard/style.css', file: 'style.css', type: 'text/css; charset=utf-8' }
] as const

/** src/dashboard from src/http/routes (tsx) or from dist/src/http/routes (compiled; the files are not copied into dist). */
function assetsDir (): string {
  const candidates = ['../../dashboard/', '../../../../src/dashboard/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
  const found = candidates.find((dir) => existsSync(dir + 'index.html'))
  if (found === undefined) throw new Error(`dashboard files not found in ${candidates.join(' or ')}`)
  return found
}

export const dashboardRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const dir = assetsDir()
  const bodies = await Promise.all(ASSETS.map((a) => readFile(dir + a.file, 'utf8')))
  ASSETS.forEach((asset, i) => {
    app.get(asset.path, {
      config: { htmlPage: asset.type.startsWith('text/html') },
      // Static files, not API operations: kept out of the OpenAPI document.
      schema: { hide: true, response: { 200: Type.String() } }
    }, async (_request, reply) => {
      return await reply.type(asset.type).header('cache-control', 'no-cache').send(bodies[i])
    })
  })
}
