import type { FastifyReply, FastifyRequest } from 'fastify'
import { matchesAnyKey } from '../auth/constant-time.ts'
import { PushlineError } from '../shared/errors.ts'

/** preHandler for operator routes: `Authorization: Bearer <admin key>`; 401 without a key, 403 with a wrong one. */
export function createAdminAuth (keys: readonly string[]) {
  return async function adminAuth (request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (match === null) throw new PushlineError('IOT_ERR_UNAUTHORIZED', 'send Authorization: Bearer <admin key>')
    if (!matchesAnyKey(match[1] as string, keys)) throw new PushlineError('IOT_ERR_FORBIDDEN', 'admin key not accepted')
  }
}
