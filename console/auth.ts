/**
 * Who may use the console. On a loopback address without tokens, whoever can reach the port may look
 * and act (as with `gantry` on the same machine). On any other address a token is required: a view
 * token reads, an admin token also drains, undrains and cancels. Tokens travel as `Authorization:
 * Bearer <token>`, or as the cookie a first visit with `?token=` sets (what a browser's EventSource can
 * send).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { ConsoleConfigError } from './errors.ts';

/** What a caller may do. */
export type Right = 'view' | 'act';

/** The console's tokens (from `GANTRY_CONSOLE_TOKEN` and `GANTRY_CONSOLE_ADMIN_TOKEN`). */
export interface ConsoleTokens {
  /** Reads every page. */
  view?: string | undefined;
  /** Reads and acts: drain, undrain, cancel. */
  admin?: string | undefined;
}

export const COOKIE = 'gantry_console';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Whether `host` is a loopback address. */
export const isLoopback = (host: string) => LOOPBACK.has(host) || host.startsWith('127.');

/**
 * The tokens the console needs on `host`: refuses to listen beyond loopback without any, and refuses
 * tokens too short to be secret.
 */
export function checkTokens(host: string, tokens: ConsoleTokens): ConsoleTokens {
  for (const [name, t] of Object.entries(tokens))
    if (t !== undefined && t.length < 16)
      throw new ConsoleConfigError(
        `the console's ${name} token is ${t.length} characters: use at least 16 (openssl rand -hex 16)`,
      );
  if (!isLoopback(host) && !tokens.view && !tokens.admin)
    throw new ConsoleConfigError(
      `the console listens on ${host}, beyond this machine: set GANTRY_CONSOLE_TOKEN (view) or GANTRY_CONSOLE_ADMIN_TOKEN (view and act), or listen on 127.0.0.1`,
    );
  return tokens;
}

const same = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** The rights a request's token gives. */
export function rightsOf(c: Context, tokens: ConsoleTokens): Right[] {
  if (!tokens.view && !tokens.admin) return ['view', 'act'];
  const header = c.req.header('authorization');
  const given = header?.startsWith('Bearer ') ? header.slice(7) : getCookie(c, COOKIE);
  if (!given) return [];
  if (tokens.admin && same(given, tokens.admin)) return ['view', 'act'];
  if (tokens.view && same(given, tokens.view)) return ['view'];
  return [];
}

/**
 * Middleware: `?token=` sets the cookie and redirects to the same page without it; a request without
 * the view right gets a 401. Routes that act check `act` themselves ({@link requireRight}).
 */
export function authenticate(tokens: ConsoleTokens): MiddlewareHandler {
  return async (c, next) => {
    const token = c.req.query('token');
    if (token !== undefined) {
      const url = new URL(c.req.url);
      url.searchParams.delete('token');
      setCookie(c, COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
      return c.redirect(`${url.pathname}${url.search}`, 303);
    }
    const rights = rightsOf(c, tokens);
    c.set('rights' as never, rights as never);
    if (!rights.includes('view'))
      return c.json(
        {
          ok: false,
          error: {
            code: 'unauthorized',
            message: 'this console needs a token: open it with ?token=<token>, or send Authorization: Bearer',
          },
        },
        401,
      );
    await next();
  };
}

/** A 403 unless the request's token may act; undefined when it may. */
export function requireRight(c: Context, tokens: ConsoleTokens, right: Right): Response | undefined {
  if (rightsOf(c, tokens).includes(right)) return undefined;
  return c.json(
    {
      ok: false,
      error: { code: 'forbidden', message: `this token may not ${right}: it takes the admin token` },
    },
    403,
  );
}
