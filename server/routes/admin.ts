/** The admin check step, with upstream's two error variants. */
import { AdminDenied } from '../admin-auth.js';
import { KbsError } from '../errors.js';
import { adminDenied } from '../observe.js';
import type { Services } from '../services.js';
import type { Step } from './types.js';

/**
 * `endpoint` set: a built-in admin endpoint (resource-policy…): denials are AdminAuthAccess.
 * Otherwise a plugin route (resource POST/DELETE): denials are AdminAuthInitialization, as upstream.
 */
export function requireAdmin(s: Services, endpoint?: string): Step {
  return async function checkAdmin(ctx, next) {
    try {
      ctx.state.admin = await s.admin.authorize(ctx.get('Authorization') || undefined, ctx.originalUrl);
    } catch (e) {
      if (!(e instanceof AdminDenied)) throw e;
      await adminDenied(s, ctx, e.message);
      throw endpoint === undefined
        ? new KbsError('AdminAuthInitialization', `failed to initialize [admin] configuration: ${e.message}`)
        : new KbsError('AdminAuthAccess', `admin access denied for endpoint ${endpoint}: ${e.message}`);
    }
    await next();
  };
}

/** Who made an admin change, for the logs. */
export function adminWho(admin: { subject?: string; role?: string } | undefined): string {
  if (!admin || (admin.subject === undefined && admin.role === undefined)) return 'anonymous (InsecureAllowAll)';
  return [admin.subject && `sub=${admin.subject}`, admin.role && `role=${admin.role}`].filter(Boolean).join(' ');
}
